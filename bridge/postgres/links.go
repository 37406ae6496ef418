package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/onechat/onechat-bridge/bridge"
)

// Cursor returns the named cursor's position, "" if it was never stored. Enqueue moves cursors.
func (s *Store) Cursor(ctx context.Context, name string) (string, error) {
	var pos string
	err := s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT position FROM cursors WHERE name = $1), '')`, name).Scan(&pos)
	if err != nil {
		return "", fmt.Errorf("cursor %q: %w", name, err)
	}
	return pos, nil
}

const selectLink = `SELECT onechat_message_id, conversation_id, platform, chat_id, platform_message_id, direction
	FROM message_map`

func scanLink(row pgx.Row) (bridge.MessageLink, error) {
	var l bridge.MessageLink
	var platform, dir string
	if err := row.Scan(&l.OneChatMessageID, &l.ConversationID, &platform, &l.Chat.ID,
		&l.PlatformMessageID, &dir); err != nil {
		return bridge.MessageLink{}, notFound(err)
	}
	l.Chat.Platform = bridge.Platform(platform)
	l.Direction = bridge.Direction(dir)
	return l, nil
}

// LinkByOneChat returns the links of a OneChat message in the order they were recorded (the
// order of the platform messages), or none when the message is unknown.
func (s *Store) LinkByOneChat(ctx context.Context, oneChatMessageID int64) ([]bridge.MessageLink, error) {
	rows, err := s.pool.Query(ctx, selectLink+` WHERE onechat_message_id = $1 ORDER BY id`, oneChatMessageID)
	if err != nil {
		return nil, fmt.Errorf("links of onechat message %d: %w", oneChatMessageID, err)
	}
	defer rows.Close()
	var out []bridge.MessageLink
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, fmt.Errorf("links of onechat message %d: %w", oneChatMessageID, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("links of onechat message %d: %w", oneChatMessageID, err)
	}
	return out, nil
}

// LinkByPlatform returns the link of a platform message, or bridge.ErrNotFound.
func (s *Store) LinkByPlatform(ctx context.Context, chat bridge.ChatRef, platformMessageID string) (bridge.MessageLink, error) {
	l, err := scanLink(s.pool.QueryRow(ctx,
		selectLink+` WHERE platform = $1 AND chat_id = $2 AND platform_message_id = $3`,
		string(chat.Platform), chat.ID, platformMessageID))
	if err != nil {
		return bridge.MessageLink{}, fmt.Errorf("link of %s message %s: %w", chat, platformMessageID, err)
	}
	return l, nil
}
