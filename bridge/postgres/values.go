package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/onechat/onechat-bridge/bridge"
)

// Value returns the platform adapter's value for key and whether it has one.
func (s *Store) Value(ctx context.Context, p bridge.Platform, key string) (string, bool, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM adapter_values WHERE platform = $1 AND key = $2`, string(p), key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("%s value %q: %w", p, key, err)
	}
	return v, true, nil
}

// SetValue stores the platform adapter's value for key, replacing any earlier one.
func (s *Store) SetValue(ctx context.Context, p bridge.Platform, key, value string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO adapter_values (platform, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (platform, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`, string(p), key, value)
	if err != nil {
		return fmt.Errorf("set %s value %q: %w", p, key, err)
	}
	return nil
}

// SetValues stores the values in one statement. A key given twice keeps its last value (an
// upsert may not touch a row twice), and rows are written in key order, so that two callers
// cannot deadlock.
func (s *Store) SetValues(ctx context.Context, values []bridge.StoredValue) error {
	last := make(map[[2]string]string, len(values))
	for _, v := range values {
		last[[2]string{string(v.Platform), v.Key}] = v.Value
	}
	if len(last) == 0 {
		return nil
	}
	ids := slices.SortedFunc(maps.Keys(last), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	platforms, keys, vals := make([]string, len(ids)), make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		platforms[i], keys[i], vals[i] = id[0], id[1], last[id]
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO adapter_values (platform, key, value)
		SELECT p, k, v FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(p, k, v, n)
		ORDER BY n
		ON CONFLICT (platform, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`, platforms, keys, vals)
	if err != nil {
		return fmt.Errorf("set %d values: %w", len(ids), err)
	}
	return nil
}

// SetValueIfAbsent stores value for key unless the key has one, and returns the value stored
// now. Of two callers racing, exactly one stores its value and both get it back.
func (s *Store) SetValueIfAbsent(ctx context.Context, p bridge.Platform, key, value string) (string, error) {
	var v string
	// The no-op update makes the row come back (and be locked until commit) when it exists.
	err := s.pool.QueryRow(ctx, `
		INSERT INTO adapter_values (platform, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (platform, key) DO UPDATE SET value = adapter_values.value
		RETURNING value`, string(p), key, value).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("set %s value %q: %w", p, key, err)
	}
	return v, nil
}

// DeleteValue forgets the platform adapter's value for key.
func (s *Store) DeleteValue(ctx context.Context, p bridge.Platform, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM adapter_values WHERE platform = $1 AND key = $2`, string(p), key); err != nil {
		return fmt.Errorf("delete %s value %q: %w", p, key, err)
	}
	return nil
}

// Values returns the platform adapter's keys that start with prefix, with their values.
func (s *Store) Values(ctx context.Context, p bridge.Platform, prefix string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, value FROM adapter_values WHERE platform = $1 AND starts_with(key, $2)`, string(p), prefix)
	if err != nil {
		return nil, fmt.Errorf("%s values %q: %w", p, prefix, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("%s values %q: %w", p, prefix, err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s values %q: %w", p, prefix, err)
	}
	return out, nil
}
