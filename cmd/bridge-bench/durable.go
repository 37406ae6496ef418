package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/onechat/onechat-bridge/e2e"
)

// durableQueue is the durable baseline's queue: the least work that still loses no message.
// Each message is a row committed before the client acts on it; the inserts that arrive while a
// commit runs go into the next one (group commit, as the bridge's enqueues), and rows are marked
// done in groups the same way, without anyone waiting for the mark (a crash before it only
// repeats the message, the bridge's own window). One connection inserts and one marks; both are
// owned by goroutines that finish waits for.
type durableQueue struct {
	ins, mark *pgx.Conn
	insCh     chan durableInsert
	markCh    chan string
	wg        sync.WaitGroup
	markErr   error
}

type durableInsert struct {
	key, payload string
	done         chan error
}

// openDurable creates the queue's table in the world's fresh database (once) and connects.
func openDurable(ctx context.Context, dbURL string) (*durableQueue, error) {
	ins, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	mark, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		_ = ins.Close(ctx)
		return nil, err
	}
	q := &durableQueue{ins: ins, mark: mark, insCh: make(chan durableInsert, 1024), markCh: make(chan string, 1<<16)}
	if _, err := ins.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_queue (
		id bigserial PRIMARY KEY, key text NOT NULL UNIQUE, payload text NOT NULL, done boolean NOT NULL DEFAULT false)`); err != nil {
		q.close(ctx)
		return nil, err
	}
	q.wg.Add(2)
	go q.inserter(ctx)
	go q.marker(ctx)
	return q, nil
}

// inserter commits whatever inserts are pending in one statement (one implicit transaction)
// and answers each of them.
func (q *durableQueue) inserter(ctx context.Context) {
	defer q.wg.Done()
	for first := range q.insCh {
		batch := []durableInsert{first}
	drain:
		for {
			select {
			case r, ok := <-q.insCh:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		keys, payloads := make([]string, len(batch)), make([]string, len(batch))
		for i, r := range batch {
			keys[i], payloads[i] = r.key, r.payload
		}
		_, err := q.ins.Exec(ctx, `INSERT INTO bench_queue (key, payload) SELECT * FROM unnest($1::text[], $2::text[])`, keys, payloads)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// marker marks done, in one statement, the rows whose marks arrived during the previous one.
func (q *durableQueue) marker(ctx context.Context) {
	defer q.wg.Done()
	for first := range q.markCh {
		keys := []string{first}
	drain:
		for {
			select {
			case k, ok := <-q.markCh:
				if !ok {
					break drain
				}
				keys = append(keys, k)
			default:
				break drain
			}
		}
		if _, err := q.mark.Exec(ctx, `UPDATE bench_queue SET done = true WHERE key = ANY($1)`, keys); err != nil && q.markErr == nil {
			q.markErr = err
		}
	}
}

// insert returns once the row is committed.
func (q *durableQueue) insert(ctx context.Context, key, payload string) error {
	r := durableInsert{key: key, payload: payload, done: make(chan error, 1)}
	select {
	case q.insCh <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// done queues the row's mark; finish waits for it.
func (q *durableQueue) done(key string) { q.markCh <- key }

// finish stops taking work and waits until every insert and mark is committed. Callers must
// not insert or mark after it.
func (q *durableQueue) finish() error {
	close(q.insCh)
	close(q.markCh)
	q.wg.Wait()
	return q.markErr
}

func (q *durableQueue) close(ctx context.Context) {
	_ = q.ins.Close(context.WithoutCancel(ctx))
	_ = q.mark.Close(context.WithoutCancel(ctx))
}

// durableInbound is the durable baseline of inbound: the same traffic as directInbound, in a
// fresh world whose fresh database holds the queue; each message is committed as a row before
// its requests and marked done after them. The CPU figure is the Postgres backends' alone.
func (b *bench) durableInbound(ctx context.Context, n, total int) ([2]result, error) {
	var res [2]result
	w, err := newWorld(ctx)
	if err != nil {
		return res, err
	}
	defer w.Close()
	c := b.client()
	base := w.OCURL + "/public/api/v1/inboxes/" + w.OC.InboxIdentifier()
	type conv struct {
		source string
		id     int64
	}
	convs := make([]conv, n)
	phase := func(name string, f func(u, k int) error) (result, error) {
		q, err := openDurable(ctx, w.DBURL)
		if err != nil {
			return result{}, err
		}
		defer q.close(ctx)
		cpu0 := cpuNow(ctx, w, -1)
		start := time.Now()
		_, err = ordered(ctx, b.workers, n, total, func(u, k int) error {
			key := name + ":" + strconv.Itoa(u) + ":" + strconv.Itoa(k)
			if err := q.insert(ctx, key, name+" "+strconv.Itoa(u)+" "+strconv.Itoa(k)); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			if err := f(u, k); err != nil {
				return err
			}
			q.done(key)
			return nil
		})
		if ferr := q.finish(); err == nil {
			err = ferr
		}
		el := time.Since(start)
		cpu1 := cpuNow(ctx, w, -1)
		if err != nil {
			return result{}, err
		}
		r := result{msgs: total, secs: el.Seconds(), rate: float64(total) / el.Seconds()}
		r.setCPU(cpu0, cpu1, total)
		return r, nil
	}
	send := func(u, k int, text string) error {
		cv := convs[u]
		return post(ctx, c, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, cv.source, cv.id),
			map[string]any{"content": text + " " + strconv.Itoa(u) + " " + strconv.Itoa(k)}, nil)
	}
	res[0], err = phase("new", func(u, k int) error {
		if k == 0 {
			src, id, err := newConversation(ctx, c, w, base, "durable:"+strconv.Itoa(u))
			if err != nil {
				return err
			}
			convs[u] = conv{src, id}
		}
		return send(u, k, "durable")
	})
	if err != nil {
		return res, err
	}
	res[1], err = phase("known", func(u, k int) error { return send(u, k, "again") })
	return res, err
}

// newConversation creates a contact with ident (and its HMAC) and a conversation, as the bridge
// does for a new user, and returns the contact's source id and the conversation's id.
func newConversation(ctx context.Context, c *http.Client, w *e2e.World, base, ident string) (string, int64, error) {
	var ct struct {
		SourceID string `json:"source_id"`
	}
	if err := post(ctx, c, base+"/contacts", map[string]any{
		"identifier": ident, "identifier_hash": w.OC.IdentifierHash(ident), "name": ident,
	}, &ct); err != nil {
		return "", 0, fmt.Errorf("create contact: %w", err)
	}
	var cv struct {
		ID int64 `json:"id"`
	}
	if err := post(ctx, c, base+"/contacts/"+ct.SourceID+"/conversations", map[string]any{}, &cv); err != nil {
		return "", 0, fmt.Errorf("create conversation: %w", err)
	}
	return ct.SourceID, cv.ID, nil
}

// durableOutbound is the durable baseline of outbound: n users with a conversation each (setup,
// not timed) and a Telegram chat; agents post total replies round robin in the fake OneChat;
// for each reply the client reads the conversation's latest messages through the Client API
// (the read the bridge must do per cable event, since the cable neither numbers nor replays
// events), commits a row, sends it to the fake Bot API and marks the row done. The cable itself
// is not read: the reply's index stands for its event, so the baseline does not pay for
// decoding the cable's frames, which the bridge does.
func (b *bench) durableOutbound(ctx context.Context, n, total int) (result, error) {
	w, err := newWorld(ctx)
	if err != nil {
		return result{}, err
	}
	defer w.Close()
	c := b.client()
	base := w.OCURL + "/public/api/v1/inboxes/" + w.OC.InboxIdentifier()
	type conv struct {
		source string
		id     int64
	}
	convs := make([]conv, n)
	for u := range n {
		w.TG.SendText(tgUser(u), "hi") // Telegram only lets a bot write to users who wrote first
		src, id, err := newConversation(ctx, c, w, base, "durable:"+strconv.Itoa(u))
		if err != nil {
			return result{}, err
		}
		convs[u] = conv{src, id}
	}
	q, err := openDurable(ctx, w.DBURL)
	if err != nil {
		return result{}, err
	}
	defer q.close(ctx)
	tg := w.TGURL + "/bot" + e2e.BotToken + "/sendMessage"
	cpu0 := cpuNow(ctx, w, -1)
	start := time.Now()
	for i := range total {
		w.OC.AgentReply(convs[i%n].id, "reply "+strconv.Itoa(i))
	}
	_, err = ordered(ctx, b.workers, n, total, func(u, k int) error {
		cv := convs[u]
		var page []struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		}
		if err := get(ctx, c, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, cv.source, cv.id), &page); err != nil {
			return fmt.Errorf("read conversation: %w", err)
		}
		text := "reply " + strconv.Itoa(u+k*n)
		key := "out:" + strconv.Itoa(u) + ":" + strconv.Itoa(k)
		if err := q.insert(ctx, key, text); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if err := post(ctx, c, tg, map[string]any{"chat_id": tgUser(u).ID, "text": text}, nil); err != nil {
			return err
		}
		q.done(key)
		return nil
	})
	if ferr := q.finish(); err == nil {
		err = ferr
	}
	el := time.Since(start)
	cpu1 := cpuNow(ctx, w, -1)
	if err != nil {
		return result{}, err
	}
	r := result{msgs: total, secs: el.Seconds(), rate: float64(total) / el.Seconds()}
	r.setCPU(cpu0, cpu1, total)
	return r, nil
}

func get(ctx context.Context, c *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	return do(c, req, out)
}
