package secret

import (
	"fmt"
	"strings"
	"testing"
)

func TestStringNeverPrints(t *testing.T) {
	type config struct {
		Token String
		Name  string
	}
	c := config{Token: "tok-SECRET", Name: "bot"}
	for _, s := range []string{
		fmt.Sprint(c.Token), fmt.Sprintf("%s %q %v %+v %#v", c.Token, c.Token, c, c, c), fmt.Sprintf("%v", &c),
	} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("printed %q", s)
		}
		if !strings.Contains(s, Redacted) {
			t.Errorf("%q does not say %s", s, Redacted)
		}
	}
	if string(c.Token) != "tok-SECRET" {
		t.Errorf("the value itself is %q", string(c.Token))
	}
}
