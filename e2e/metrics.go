package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Metrics is one scrape of /metrics: every sample by its series, written as Prometheus prints
// it: name{label="value",...} (labels in the order the bridge writes them, which is sorted).
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text format (comments skipped).
func ParseMetrics(body string) Metrics {
	m := Metrics{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// Get returns the sample of name with exactly labels (given as "key", "value" pairs, in any
// order) and whether it exists.
func (m Metrics) Get(name string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for series, v := range m {
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		got := map[string]string{}
		ls = strings.TrimSuffix(ls, "}")
		for _, kv := range splitLabels(ls) {
			k, val, _ := strings.Cut(kv, "=")
			got[k] = strings.Trim(val, `"`)
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, val := range want {
			if got[k] != val {
				match = false
			}
		}
		if match {
			return v, true
		}
	}
	return 0, false
}

// Value is Get without the presence flag (0 when absent).
func (m Metrics) Value(name string, labels ...string) float64 {
	v, _ := m.Get(name, labels...)
	return v
}

func splitLabels(s string) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// Scrape fetches and parses the process's /metrics.
func (p *Process) Scrape(ctx context.Context) (Metrics, error) {
	code, body, err := p.Get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("/metrics answered %d", code)
	}
	return ParseMetrics(body), nil
}
