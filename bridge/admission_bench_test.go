package bridge_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// BenchmarkAgentRepliesDuringNewUserFlood measures how long an agent's reply takes to reach
// the user (from the agent's post in OneChat to the adapter's Send) while 2,000 new users
// write at once, with the default request budget (45/s): the flood alone needs about three
// requests per user, over two minutes of budget, and agents' requests must go first. It
// reports the p50 and p99 over 100 replies, sent one after another by 10 agents while the
// flood is being worked through.
//
//	scripts/test.sh -run '^$' -bench AgentRepliesDuringNewUserFlood -benchtime 1x ./bridge/
func BenchmarkAgentRepliesDuringNewUserFlood(b *testing.B) {
	const (
		newUsers = 2000
		agents   = 10
		replies  = 100
	)
	for range b.N {
		b.StopTimer()
		oc := onechattest.NewServer(b, &onechattest.Options{PingInterval: time.Second})
		adapter := bridgetest.NewFakeAdapter(bridge.Platform("telegram"))
		core, err := bridge.New(bridge.Options{
			Store:    pgtest.NewStore(b),
			OneChat:  onechat.NewClient(oc.URL(), oc.InboxIdentifier(), nil), // the default budget
			CableURL: oc.CableURL(),
			Adapters: []bridge.AdapterBuilder{adapter.Build},
			Logger:   zap.NewNop(),
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		done := make(chan error, 1)
		go func() { done <- core.Run(ctx) }()

		// The agents' users, already known, with a conversation each and the cable listening.
		convs := make([]int64, agents)
		for i := range agents {
			if err := adapter.Receive(ctx, userMessage(int64(900000+i), "hello")); err != nil {
				b.Fatal(err)
			}
		}
		for i := range agents {
			if err := oc.Wait(ctx, func() bool {
				c, ok := oc.ContactByIdentifier("telegram:" + strconv.Itoa(900000+i))
				if !ok {
					return false
				}
				cs := oc.Conversations(c.ID)
				if len(cs) == 0 || len(oc.Messages(cs[0].ID)) == 0 {
					return false
				}
				for _, ci := range oc.ContactInboxes(c.ID) {
					if oc.Subscribed(ci.PubsubToken) > 0 {
						convs[i] = cs[0].ID
						return true
					}
				}
				return false
			}); err != nil {
				b.Fatal(err)
			}
		}

		flood := make([]bridge.Inbound, newUsers)
		for i := range flood {
			flood[i] = userMessage(int64(100000+i), "/start")
		}
		if err := adapter.Receive(ctx, flood...); err != nil {
			b.Fatal(err)
		}

		b.StartTimer()
		latencies := make([]time.Duration, 0, replies)
		for i := range replies {
			start := time.Now()
			oc.AgentReply(convs[i%agents], fmt.Sprintf("reply %d", i))
			if _, err := adapter.WaitSent(ctx, i+1); err != nil {
				b.Fatalf("reply %d never reached the user: %v", i, err)
			}
			latencies = append(latencies, time.Since(start))
			time.Sleep(50 * time.Millisecond) // agents type; the flood goes on meanwhile
		}
		b.StopTimer()
		posted := 0
		for i := range newUsers {
			if _, ok := oc.ContactByIdentifier("telegram:" + strconv.Itoa(100000+i)); ok {
				posted++
			}
		}
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Milliseconds()), "p99-ms")
		b.ReportMetric(float64(posted), "new-contacts-meanwhile")
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
