package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one throughput run of the bridge or of its durable baseline.
type result struct {
	msgs       int
	secs, rate float64
	// cpuBridge and cpuPG are the CPU milliseconds per message of the bridge process and of the
	// Postgres backends of the run's database; -1 where not measured (the durable baseline has
	// no bridge process: its client shares this process with the fakes). cpuSelf is this
	// process's: the fakes serving the run, the benchmark's own polling and, for the baselines,
	// their client.
	cpuBridge, cpuPG, cpuSelf float64
	note                      string
}

// setCPU sets the CPU per message from the readings a and b taken around msgs messages.
func (r *result) setCPU(a, b cpuUse, msgs int) {
	r.cpuBridge, r.cpuPG, r.cpuSelf = -1, -1, -1
	if !a.ok || !b.ok || msgs == 0 {
		return
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(msgs) }
	if a.bridge >= 0 && b.bridge >= 0 {
		r.cpuBridge = ms(b.bridge - a.bridge)
	}
	r.cpuPG = ms(b.postgres - a.postgres)
	if a.self >= 0 && b.self >= 0 {
		r.cpuSelf = ms(b.self - a.self)
	}
}

// cpu is "bridge / Postgres / this process" in ms per message, "-" for what was not measured.
func (r result) cpu() string { return cpuTriple(r.cpuBridge, r.cpuPG, r.cpuSelf) }

func cpuTriple(bridge, pg, self float64) string {
	f := func(v float64) string {
		if v < 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return f(bridge) + " / " + f(pg) + " / " + f(self)
}

// summary gathers a scenario's runs: the bridge's, the durable baseline's (alternating with
// them) and the direct client's single rate.
type summary struct {
	scenario        string
	users           int
	bridge, durable []result
	direct          float64
}

// runHeader and runRow print the table of every run.
func runHeader() {
	row("scenario", "users", "run", "client", "messages", "seconds", "msg/s", "CPU per message: bridge / Postgres / fakes and client ms", "note")
	row("---", "---", "---", "---", "---", "---", "---", "---", "---")
}

func runRow(scenario string, users int, run any, client string, msgs int, secs, rate float64, cpu, note string) {
	row(scenario, users, run, client, msgs, secs, rate, cpu, note)
}

// median is the median of the values (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rates(rs []result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.rate
	}
	return out
}

// medianCPU is the median of each CPU figure over the runs that measured it.
func medianCPU(rs []result) string {
	med := func(get func(result) float64) float64 {
		var vs []float64
		for _, r := range rs {
			if v := get(r); v >= 0 {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			return -1
		}
		return median(vs)
	}
	return cpuTriple(med(func(r result) float64 { return r.cpuBridge }), med(func(r result) float64 { return r.cpuPG }),
		med(func(r result) float64 { return r.cpuSelf }))
}

func list(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.Join(s, ", ")
}

// printSummaries prints the medians: the bridge beside its durable baseline (the limit) and the
// direct client (a second reference).
func printSummaries(ss []*summary, runs int) {
	if len(ss) == 0 {
		return
	}
	fmt.Printf("\nMedians of %d runs alternating the bridge and its durable baseline (msg/s of every run in order; CPU per message in ms, medians):\n\n", runs)
	row("scenario", "users", "bridge msg/s (runs)", "durable msg/s (runs)", "bridge median", "durable median", "bridge / durable", "direct msg/s", "bridge / direct", "CPU bridge / its Postgres / fakes", "CPU durable: - / Postgres / fakes and client")
	row("---", "---", "---", "---", "---", "---", "---", "---", "---", "---", "---")
	for _, s := range ss {
		br, dr := median(rates(s.bridge)), median(rates(s.durable))
		row(s.scenario, s.users, list(rates(s.bridge)), list(rates(s.durable)), br, dr, share(br, dr), s.direct, share(br, s.direct),
			medianCPU(s.bridge), medianCPU(s.durable))
	}
}
