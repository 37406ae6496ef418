package onechattest

import "slices"

// Read-only views for load tests and benchmarks. Unlike the per-contact accessors, each takes
// the fake's lock once and costs O(state), not O(state) per contact, so a benchmark with tens
// of thousands of contacts can poll them.

// CountMessages returns how many messages of messageType (MessageIncoming, …) the fake holds,
// private notes included. It allocates nothing.
func (s *Server) CountMessages(messageType int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Kept as messages come and go: the benchmark asks every 20 ms, and a scan of every message
	// under the server's lock held up the requests it was measuring.
	return s.st.msgsByType[messageType]
}

// AllContactInboxes returns every contact session, ascending id.
func (s *Server) AllContactInboxes() []ContactInbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ContactInbox, 0, len(s.st.sessions))
	for _, ci := range s.st.sessions {
		out = append(out, ci.public())
	}
	slices.SortFunc(out, func(a, b ContactInbox) int { return cmpInt(a.ID, b.ID) })
	return out
}

// AllConversations returns every conversation, ascending id.
func (s *Server) AllConversations() []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conversation, 0, len(s.st.convs))
	for _, c := range s.st.convs {
		out = append(out, c.public())
	}
	slices.SortFunc(out, func(a, b Conversation) int { return cmpInt(a.ID, b.ID) })
	return out
}

// SubscribedTokens returns, by pubsub token, how many confirmed subscriptions are live on open
// sockets (not counting sockets RestartCable is closing): Subscribed for every token at once.
func (s *Server) SubscribedTokens() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for c := range s.conns {
		if c.retired {
			continue
		}
		for _, sub := range c.subs {
			if sub.confirmed {
				out[sub.token]++
			}
		}
	}
	return out
}
