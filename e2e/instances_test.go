package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/e2e"
)

// instance is one of several bridge processes sharing the rig's database.
type instance struct {
	name string
	p    *e2e.Process
	logs *e2e.Logs
}

// roles reads the roles an instance says it holds on /readyz.
func (in *instance) roles(ctx context.Context) (running []string, partitions, instances int, ok bool) {
	code, body, err := in.p.Get(ctx, "/readyz")
	if err != nil || code == 0 {
		return nil, 0, 0, false
	}
	var b struct {
		Roles *struct {
			Running     []string `json:"running"`
			Partitions  int      `json:"cable_partitions"`
			Instances   int      `json:"instances"`
			Coordinated bool     `json:"coordinated"`
		} `json:"roles"`
	}
	if json.Unmarshal([]byte(body), &b) != nil || b.Roles == nil || !b.Roles.Coordinated {
		return nil, 0, 0, false
	}
	return b.Roles.Running, b.Roles.Partitions, b.Roles.Instances, true
}

// TestThreeInstancesSurviveKillingRoleHolders runs three bridge processes on one database and
// SIGKILLs the one polling Telegram, then the one that took over, in the middle of traffic both
// ways: every user message reaches OneChat once and in order, every agent reply reaches its
// user in order (a send in flight at a kill may go twice), and the survivors share the cable
// partitions among themselves.
func TestThreeInstancesSurviveKillingRoleHolders(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var all []*instance
	startInstance := func(name string) *instance {
		t.Helper()
		in := &instance{name: name, logs: e2e.NewLogs(nil)}
		p, err := e2e.Start(ctx, bridgeBin, append(slices.Clone(r.env), "BRIDGE_INSTANCE_ID="+name), in.logs)
		if err != nil {
			t.Fatal(err)
		}
		in.p = p
		all = append(all, in)
		return in
	}
	t.Cleanup(func() {
		for _, in := range all {
			if in.p != nil {
				_ = in.p.Stop(20 * time.Second)
			}
			for _, i := range in.logs.Leaks(r.w.Secrets()) {
				t.Errorf("instance %s logged secret #%d", in.name, i)
			}
			if t.Failed() {
				if dir := os.Getenv("E2E_LOG_DIR"); dir != "" {
					_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+in.name+".log"), []byte(in.logs.String()), 0o644)
				}
				lines := in.logs.LinesSince(max(0, in.logs.Len()-40))
				t.Logf("last lines of instance %s:\n%s", in.name, strings.Join(lines, "\n"))
			}
		}
	})
	for _, name := range []string{"a", "b", "c"} {
		startInstance(name)
	}
	live := func() []*instance {
		var out []*instance
		for _, in := range all {
			if in.p != nil {
				out = append(out, in)
			}
		}
		return out
	}
	// waitRoles waits until every live instance is coordinated and sees the others, exactly one
	// runs the Telegram poller, and the live instances hold all 64 partitions between them.
	waitRoles := func() *instance {
		t.Helper()
		var poller *instance
		var desc string
		ok := poll(ctx, func() bool {
			poller, desc = nil, ""
			total, pollers := 0, 0
			for _, in := range live() {
				running, parts, n, ok := in.roles(ctx)
				desc += fmt.Sprintf("%s: ok=%v running=%v partitions=%d instances=%d; ", in.name, ok, running, parts, n)
				if !ok || n != len(live()) {
					return false
				}
				total += parts
				if slices.Contains(running, "telegram") {
					pollers++
					poller = in
				}
			}
			return pollers == 1 && total == 64
		})
		if !ok {
			t.Fatalf("roles never settled: %s", desc)
		}
		return poller
	}
	poller := waitRoles()

	users := []int64{6661001, 6661002, 6661003, 6661004}
	convs := map[int64]int64{}
	for _, id := range users {
		r.w.TG.SendText(user(id), "hello")
		contact, conv := r.conversation(ctx, tgIdentifier(user(id)))
		r.waitSubscribed(ctx, contact.ID)
		convs[id] = conv.ID
	}
	const rounds = 20
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			for _, id := range users {
				r.w.TG.SendText(user(id), fmt.Sprintf("in %d", i))
				r.w.OC.AgentReply(convs[id], fmt.Sprintf("out %d", i))
			}
		}
	}
	kills := 0
	send(1, 7)
	poller.p.Kill() // SIGKILL, mid-traffic: its leases are abandoned, not released
	poller.p = nil
	kills++
	send(8, 14)
	poller = waitRoles() // a survivor took the poller and the dead one's partitions
	poller.p.Kill()
	poller.p = nil
	kills++
	send(15, rounds)
	waitRoles()

	for _, id := range users {
		want := append([]string{"hello"}, seqTexts("in", rounds)...)
		r.waitIncoming(ctx, convs[id], want...) // once, in order
		if _, err := r.w.TG.WaitSentMatch(ctx, id, func(s []telegramSent) bool { return hasAll(sentTexts(s), seqTexts("out", rounds)) }); err != nil {
			t.Fatalf("user %d got %q: %v", id, sentTexts(r.w.TG.Sent(id)), err)
		}
		got := sentTexts(r.w.TG.Sent(id))
		if !inOrder(got, seqTexts("out", rounds)) {
			t.Errorf("user %d got replies out of order: %q", id, got)
		}
		if dups := len(got) - rounds; dups > kills {
			t.Errorf("user %d got %d duplicate replies after %d kills: %q", id, dups, kills, got)
		}
	}
}
