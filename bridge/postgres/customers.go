package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/onechat/onechat-bridge/bridge"
)

// customerColumns selects a bridge.Customer from customers c joined with its current
// conversation v; scanCustomer reads them in this order.
const customerColumns = `
	c.id, c.platform, c.platform_user_id, c.chat_id, c.identifier, c.source_id, c.pubsub_token,
	c.contact_id, c.display_name, c.username, c.unreachable_reason,
	COALESCE(c.conversation_id, 0), COALESCE(v.status, '')`

const selectCustomer = `SELECT ` + customerColumns + `
	FROM customers c LEFT JOIN conversations v ON v.id = c.conversation_id`

func scanCustomer(row pgx.Row) (bridge.Customer, error) {
	var c bridge.Customer
	var platform, chatID string
	err := row.Scan(&c.ID, &platform, &c.User.ID, &chatID, &c.Identifier, &c.SourceID,
		&c.PubsubToken, &c.ContactID, &c.DisplayName, &c.Username, &c.UnreachableReason,
		&c.ConversationID, &c.ConversationStatus)
	if err != nil {
		return bridge.Customer{}, notFound(err)
	}
	c.User.Platform = bridge.Platform(platform)
	if chatID != "" {
		c.Chat = bridge.ChatRef{Platform: c.User.Platform, ID: chatID}
	}
	return c, nil
}

// Customer returns the customer for the platform user, or bridge.ErrNotFound.
func (s *Store) Customer(ctx context.Context, u bridge.UserRef) (bridge.Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx,
		selectCustomer+` WHERE c.platform = $1 AND c.platform_user_id = $2`, string(u.Platform), u.ID))
	if err != nil {
		return bridge.Customer{}, fmt.Errorf("customer %s: %w", u, err)
	}
	return c, nil
}

// CustomerByConversation returns the customer whose current or past conversation has this
// OneChat id, or bridge.ErrNotFound.
func (s *Store) CustomerByConversation(ctx context.Context, conversationID int64) (bridge.Customer, error) {
	c, err := scanCustomer(s.pool.QueryRow(ctx,
		selectCustomer+` WHERE c.id = (SELECT customer_id FROM conversations WHERE id = $1)`, conversationID))
	if err != nil {
		return bridge.Customer{}, fmt.Errorf("customer of conversation %d: %w", conversationID, err)
	}
	return c, nil
}

// CustomerByPubsubToken returns the customer with this cable token, or bridge.ErrNotFound, and
// the position of the cursor named cursorPrefix and its current conversation's id ("" when
// there is none): a catch-up reads both, in one round trip. An empty token matches nobody. The
// token is a credential, so errors do not quote it.
func (s *Store) CustomerByPubsubToken(ctx context.Context, token, cursorPrefix string) (bridge.Customer, string, error) {
	if token == "" {
		return bridge.Customer{}, "", fmt.Errorf("customer by pubsub token: empty token: %w", bridge.ErrNotFound)
	}
	// "<> ''" lets Postgres use the partial unique index on the token: a prepared statement's
	// plan cannot know that $1 is not empty, and without it scans every customer.
	var pos string
	var c bridge.Customer
	var platform, chatID string
	err := s.pool.QueryRow(ctx, `SELECT `+customerColumns+`,
			COALESCE((SELECT position FROM cursors WHERE name = $2 || c.conversation_id::text), '')
		FROM customers c LEFT JOIN conversations v ON v.id = c.conversation_id
		WHERE c.pubsub_token = $1 AND c.pubsub_token <> ''`, token, cursorPrefix).Scan(
		&c.ID, &platform, &c.User.ID, &chatID, &c.Identifier, &c.SourceID,
		&c.PubsubToken, &c.ContactID, &c.DisplayName, &c.Username, &c.UnreachableReason,
		&c.ConversationID, &c.ConversationStatus, &pos)
	if err != nil {
		return bridge.Customer{}, "", fmt.Errorf("customer by pubsub token: %w", notFound(err))
	}
	c.User.Platform = bridge.Platform(platform)
	if chatID != "" {
		c.Chat = bridge.ChatRef{Platform: c.User.Platform, ID: chatID}
	}
	return c, pos, nil
}

// SaveCustomer inserts the customer keyed by c.User with every column c carries (the
// conversation fields aside, which only SetConversation changes) when there is none; when
// there is one, it changes only the columns named by fields. It returns the customer as
// stored, with ID and the conversation fields filled in. The chat is stored by id only, so
// c.Chat must be on the user's platform.
func (s *Store) SaveCustomer(ctx context.Context, c bridge.Customer, fields bridge.CustomerFields) (bridge.Customer, error) {
	if err := checkCustomer(c); err != nil {
		return bridge.Customer{}, fmt.Errorf("save customer: %w", err)
	}
	// ON CONFLICT DO UPDATE with no column of its own still locks and returns the row.
	set := "updated_at = customers.updated_at"
	if cols := customerSet(fields, "EXCLUDED."); cols != "" {
		set = cols + ", updated_at = now()"
	}
	saved, err := scanCustomer(s.pool.QueryRow(ctx, `
		WITH c AS (
			INSERT INTO customers (platform, platform_user_id, chat_id, identifier, source_id,
				pubsub_token, contact_id, display_name, username, unreachable_reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (platform, platform_user_id) DO UPDATE SET `+set+`
			RETURNING *
		)
		SELECT `+customerColumns+` FROM c LEFT JOIN conversations v ON v.id = c.conversation_id`,
		string(c.User.Platform), c.User.ID, c.Chat.ID, c.Identifier, c.SourceID, c.PubsubToken,
		c.ContactID, c.DisplayName, c.Username, c.UnreachableReason))
	if err != nil {
		return bridge.Customer{}, fmt.Errorf("save customer %s: %w", c.User, err)
	}
	return saved, nil
}

// UpdateCustomer changes only the columns named by fields of the customer keyed by c.User and
// returns the customer as stored, or bridge.ErrNotFound.
func (s *Store) UpdateCustomer(ctx context.Context, c bridge.Customer, fields bridge.CustomerFields) (bridge.Customer, error) {
	if err := checkCustomer(c); err != nil {
		return bridge.Customer{}, fmt.Errorf("update customer: %w", err)
	}
	cols := customerSet(fields, "")
	if cols == "" {
		return s.Customer(ctx, c.User)
	}
	// Every column's value is a parameter, the unused ones included, so the statement has the
	// same parameters whatever fields names.
	saved, err := scanCustomer(s.pool.QueryRow(ctx, `
		WITH c AS (
			UPDATE customers SET `+cols+`, updated_at = now()
			FROM (SELECT $3::text AS chat_id, $4::text AS identifier, $5::text AS display_name,
				$6::text AS username, $7::text AS unreachable_reason) AS x
			WHERE customers.platform = $1 AND customers.platform_user_id = $2
			RETURNING customers.*
		)
		SELECT `+customerColumns+` FROM c LEFT JOIN conversations v ON v.id = c.conversation_id`,
		string(c.User.Platform), c.User.ID, c.Chat.ID, c.Identifier, c.DisplayName, c.Username,
		c.UnreachableReason))
	if err != nil {
		return bridge.Customer{}, fmt.Errorf("update customer %s: %w", c.User, err)
	}
	return saved, nil
}

// checkCustomer refuses a customer without a user, or with a chat on another platform.
func checkCustomer(c bridge.Customer) error {
	if c.User.Platform == "" || c.User.ID == "" {
		return fmt.Errorf("incomplete user %q", c.User.String())
	}
	if c.Chat.Platform != "" && c.Chat.Platform != c.User.Platform {
		return fmt.Errorf("%s: chat %s is on another platform", c.User, c.Chat)
	}
	return nil
}

// customerSet is the SET list of the columns fields names, their new values read from the
// relation named by from ("EXCLUDED." or "" for UpdateCustomer's x.).
func customerSet(fields bridge.CustomerFields, from string) string {
	if from == "" {
		from = "x."
	}
	var cols []string
	if fields&bridge.CustomerChat != 0 {
		cols = append(cols, "chat_id = "+from+"chat_id")
	}
	if fields&bridge.CustomerProfile != 0 {
		cols = append(cols, "identifier = "+from+"identifier", "display_name = "+from+"display_name",
			"username = "+from+"username")
	}
	if fields&bridge.CustomerReachability != 0 {
		cols = append(cols, "unreachable_reason = "+from+"unreachable_reason")
	}
	return strings.Join(cols, ", ")
}

// SetContactSession replaces the customer's contact session (SourceID, PubsubToken,
// ContactID) by c's while the stored source_id is still was, and returns the customer as
// stored and whether it changed it, or bridge.ErrNotFound.
func (s *Store) SetContactSession(ctx context.Context, id int64, was string, c bridge.Customer) (bridge.Customer, bool, error) {
	// The read follows the update in its transaction, so it returns the session as it is now:
	// the new one, or the one that made the update refuse. A batch is one implicit transaction
	// in one round trip (every new user passes here; BEGIN and COMMIT cost two more).
	var changed bool
	var saved bridge.Customer
	b := &pgx.Batch{}
	b.Queue(`
		UPDATE customers SET source_id = $3, pubsub_token = $4, contact_id = $5, updated_at = now()
		WHERE id = $1 AND source_id = $2`, id, was, c.SourceID, c.PubsubToken, c.ContactID).Exec(func(tag pgconn.CommandTag) error {
		changed = tag.RowsAffected() == 1
		return nil
	})
	b.Queue(selectCustomer+` WHERE c.id = $1`, id).QueryRow(func(row pgx.Row) error {
		var err error
		saved, err = scanCustomer(row)
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return bridge.Customer{}, false, fmt.Errorf("set contact session of customer %d: %w", id, err)
	}
	return saved, changed, nil
}

// Customers returns every customer that has a contact session (SourceID set), in id order.
func (s *Store) Customers(ctx context.Context) ([]bridge.Customer, error) {
	return s.listCustomers(ctx, "customers", selectCustomer+` WHERE c.source_id <> '' ORDER BY c.id`)
}

// listCustomers runs a selectCustomer query and scans every row; what names the list in errors.
func (s *Store) listCustomers(ctx context.Context, what, sql string, args ...any) ([]bridge.Customer, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []bridge.Customer
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

// SetConversation makes conversationID the customer's current conversation with the given
// status, remembering that the conversation belongs to the customer. It returns
// bridge.ErrNotFound when the customer does not exist.
func (s *Store) SetConversation(ctx context.Context, customerID, conversationID int64, status string) error {
	// One statement, so one round trip: every new conversation of every user passes here.
	// Locking the customer first proves it exists and orders concurrent switches; the
	// customer's foreign key to the conversation is checked at the end of the statement, when
	// the conversation row exists.
	// A conversation recorded for another customer is left alone (the upsert's WHERE), and
	// then nothing is written: a conversation never changes hands.
	var known, set bool
	err := s.pool.QueryRow(ctx, `
		WITH cu AS (
			SELECT id FROM customers WHERE id = $1 FOR UPDATE
		), conv AS (
			INSERT INTO conversations (id, customer_id, status) SELECT $2, id, $3 FROM cu
			ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()
				WHERE conversations.customer_id = EXCLUDED.customer_id
			RETURNING id
		), upd AS (
			UPDATE customers SET conversation_id = (SELECT id FROM conv), updated_at = now()
			WHERE id = (SELECT id FROM cu) AND EXISTS (SELECT FROM conv)
			RETURNING id
		)
		SELECT EXISTS (SELECT FROM cu), EXISTS (SELECT FROM upd)`, customerID, conversationID, status).Scan(&known, &set)
	switch {
	case err != nil:
		return fmt.Errorf("set conversation %d of customer %d: %w", conversationID, customerID, err)
	case !known:
		return fmt.Errorf("set conversation %d of customer %d: %w", conversationID, customerID, bridge.ErrNotFound)
	case !set:
		return fmt.Errorf("set conversation %d of customer %d: %w", conversationID, customerID, bridge.ErrConversationTaken)
	}
	return nil
}

// ConversationsSince counts the conversations recorded for the customer since the time given,
// through conversations_customer_idx.
func (s *Store) ConversationsSince(ctx context.Context, customerID int64, since time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM conversations WHERE customer_id = $1 AND created_at >= $2`,
		customerID, since).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("conversations of customer %d since %s: %w", customerID, since.Format(time.RFC3339), err)
	}
	return n, nil
}

// LatestCustomerWithConversation returns the most recently created customer that has a contact
// session and a current conversation, or bridge.ErrNotFound.
func (s *Store) LatestCustomerWithConversation(ctx context.Context) (bridge.Customer, error) {
	// Newest first along the primary key: the scan stops at the first match.
	c, err := scanCustomer(s.pool.QueryRow(ctx, selectCustomer+`
		WHERE c.conversation_id IS NOT NULL AND c.source_id <> '' ORDER BY c.id DESC LIMIT 1`))
	if err != nil {
		return bridge.Customer{}, fmt.Errorf("latest customer with a conversation: %w", err)
	}
	return c, nil
}

// SetConversationStatus records a new status for a known conversation. It returns
// bridge.ErrNotFound when the bridge does not own the conversation.
func (s *Store) SetConversationStatus(ctx context.Context, conversationID int64, status string) error {
	// The cable repeats a conversation's status with many events: an unchanged status is not
	// written (no row version, no WAL flush), and updated_at stays the time it changed, which
	// is what the idle sweep measures from.
	var known bool
	err := s.pool.QueryRow(ctx, `
		WITH changed AS (
			UPDATE conversations SET status = $2, updated_at = now()
			WHERE id = $1 AND status <> $2
			RETURNING id)
		SELECT EXISTS (SELECT FROM conversations WHERE id = $1)`, conversationID, status).Scan(&known)
	if err != nil {
		return fmt.Errorf("set status of conversation %d: %w", conversationID, err)
	}
	if !known {
		return fmt.Errorf("set status of conversation %d: %w", conversationID, bridge.ErrNotFound)
	}
	return nil
}

// ChangeConversationStatus records a new status for a known conversation and, when it changed,
// queues the jobs onChange returns for the previous status, in one transaction (see
// bridge.Store). The row is locked first, so of two concurrent changes to the same status only
// one sees a change.
func (s *Store) ChangeConversationStatus(ctx context.Context, conversationID int64, status string, onChange func(previous string) []bridge.NewJob) (string, error) {
	return s.changeConversationStatus(ctx, conversationID, nil, status, onChange)
}

// ChangeConversationStatusFrom is ChangeConversationStatus only while the recorded status is
// from (see bridge.Store).
func (s *Store) ChangeConversationStatusFrom(ctx context.Context, conversationID int64, from, status string, onChange func(previous string) []bridge.NewJob) (string, error) {
	return s.changeConversationStatus(ctx, conversationID, &from, status, onChange)
}

func (s *Store) changeConversationStatus(ctx context.Context, conversationID int64, from *string, status string, onChange func(previous string) []bridge.NewJob) (string, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("change status of conversation %d: %w", conversationID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var previous string
	err = tx.QueryRow(ctx, `SELECT status FROM conversations WHERE id = $1 FOR UPDATE`, conversationID).Scan(&previous)
	if err != nil {
		return "", fmt.Errorf("change status of conversation %d: %w", conversationID, notFound(err))
	}
	if previous == status || from != nil && previous != *from {
		return "", nil
	}
	if _, err := tx.Exec(ctx, `UPDATE conversations SET status = $2, updated_at = now() WHERE id = $1`, conversationID, status); err != nil {
		return "", fmt.Errorf("change status of conversation %d: %w", conversationID, err)
	}
	var jobs []bridge.NewJob
	if onChange != nil {
		jobs = onChange(previous)
	}
	if len(jobs) > 0 {
		cols := newJobColumns(len(jobs))
		for i, j := range jobs {
			if err := cols.add(i, j); err != nil {
				return "", fmt.Errorf("change status of conversation %d: %w", conversationID, err)
			}
		}
		b := &pgx.Batch{}
		cols.queue(b, make([]int64, len(jobs)), func(bridge.Job, bool) {})
		// The caller wakes its own process's workers; the others hear of the jobs here.
		for _, d := range slices.Compact(slices.Sorted(slices.Values(cols.dirs))) {
			b.Queue(`SELECT pg_notify($1, $2)`, queueChannel, d+" "+s.self)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return "", fmt.Errorf("change status of conversation %d: queue %d jobs: %w", conversationID, len(jobs), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("change status of conversation %d: %w", conversationID, err)
	}
	return previous, nil
}
