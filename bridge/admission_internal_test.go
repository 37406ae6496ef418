package bridge

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestRecentOpeningsReadsBothFormats: the day's bound counts the openings of the last 24 hours
// whether they were stored in nanoseconds (now) or in seconds (by older bridges), so an upgrade
// neither forgets a user's openings nor counts old ones.
func TestRecentOpeningsReadsBothFormats(t *testing.T) {
	now := time.Now()
	secs := func(d time.Duration) string { return strconv.FormatInt(now.Add(-d).Unix(), 10) }
	nanos := func(d time.Duration) string { return strconv.FormatInt(now.Add(-d).UnixNano(), 10) }
	v := secs(25*time.Hour) + "," + secs(time.Hour) + ",junk," + nanos(30*time.Hour) + "," + nanos(time.Minute)
	got := recentOpenings(v, now)
	want := []string{secs(time.Hour), nanos(time.Minute)}
	if !slices.Equal(got, want) {
		t.Errorf("recentOpenings(%q) = %q, want %q", v, got, want)
	}
}
