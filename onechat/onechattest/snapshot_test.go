package onechattest

import "testing"

func TestSnapshotsAgreeWithThePerContactAccessors(t *testing.T) {
	s, rc := newClient(t, nil)
	src1, tok1 := rc.session(map[string]any{"identifier": "a"})
	_, tok2 := rc.session(map[string]any{"identifier": "b"})
	conv := rc.conversation(src1)
	for range 3 {
		rc.obj("POST", rc.convPath(src1, conv, "/messages"), map[string]any{"content": "hi"})
	}
	s.AgentReply(conv, "hello")

	if n := s.CountMessages(MessageIncoming); n != 3 {
		t.Errorf("CountMessages(incoming) = %d, want 3", n)
	}
	if n := s.CountMessages(MessageOutgoing); n != 1 {
		t.Errorf("CountMessages(outgoing) = %d, want 1", n)
	}
	if cis := s.AllContactInboxes(); len(cis) != 2 || cis[0].PubsubToken != tok1 || cis[1].PubsubToken != tok2 {
		t.Errorf("AllContactInboxes = %+v", cis)
	}
	if cvs := s.AllConversations(); len(cvs) != 1 || cvs[0].ID != conv {
		t.Errorf("AllConversations = %+v", cvs)
	}

	c := dialCable(t, s)
	c.subscribe(tok1)
	if got := s.SubscribedTokens(); len(got) != 1 || got[tok1] != 1 {
		t.Errorf("SubscribedTokens = %v, want %s: 1", got, tok1)
	}
	s.RestartCable()
	if got := s.SubscribedTokens(); len(got) != 0 {
		t.Errorf("SubscribedTokens after restart = %v, want none", got)
	}
}
