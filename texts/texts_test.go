package texts

import (
	"slices"
	"strings"
	"testing"
)

// The languages the bridge promises to ship.
var shipped = []string{"de", "en", "es", "fr", "pt-BR", "ru", "uk"}

func TestEveryLanguageHasEveryKeyWithTheSamePlaceholders(t *testing.T) {
	if got := slices.Sorted(func(yield func(string) bool) {
		for l := range builtin {
			if !yield(l) {
				return
			}
		}
	}); !slices.Equal(got, shipped) {
		t.Fatalf("built-in languages = %v, want %v", got, shipped)
	}
	if len(builtin[Reference]) != len(Keys()) {
		t.Fatalf("English has %d texts, Keys() lists %d", len(builtin[Reference]), len(Keys()))
	}
	for lang, texts := range builtin {
		if tag, ok := Canonical(lang); !ok || tag != lang {
			t.Errorf("built-in language %q is not canonical (%q)", lang, tag)
		}
		if len(texts) != len(Keys()) {
			t.Errorf("%s has %d texts, want %d", lang, len(texts), len(Keys()))
		}
		for _, k := range Keys() {
			s, ok := texts[k]
			if !ok || strings.TrimSpace(s) == "" {
				t.Errorf("%s lacks %s", lang, k)
				continue
			}
			if got, want := placeholders(s), Placeholders(k); !slices.Equal(got, want) {
				t.Errorf("%s.%s has placeholders %v, English has %v", lang, k, got, want)
			}
			if lang != Reference && s == builtin[Reference][k] {
				t.Errorf("%s.%s is the English text, not a translation", lang, k)
			}
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"en", "en", true},
		{"pt-br", "pt-BR", true},
		{"pt_BR", "pt-BR", true},
		{"ES-419", "es-419", true},
		{"zh-hant-tw", "zh-Hant-TW", true},
		{" de ", "de", true},
		{"", "", false},
		{"e", "", false},
		{"english", "", false},
		{"en-", "", false},
		{"en--US", "", false},
		{"12", "", false},
		{"es-ES;q=0.9", "", false},
	} {
		got, ok := Canonical(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLanguageChoosesTheClosestLanguage(t *testing.T) {
	c := Builtin()
	for _, tc := range []struct{ tag, want string }{
		{"pt-BR", "pt-BR"},
		{"pt-br", "pt-BR"},
		{"pt", "pt-BR"},
		{"pt-PT", "pt-BR"},
		{"es", "es"},
		{"es-419", "es"},
		{"es-ES", "es"},
		{"en-US", "en"},
		{"en-GB", "en"},
		{"uk", "uk"},
		{"ru-RU", "ru"},
		{"de-AT", "de"},
		{"fr-CA", "fr"},
		{"ja", "en"},
		{"", "en"},
		{"not a tag", "en"},
	} {
		if got := c.Language(tc.tag); got != tc.want {
			t.Errorf("Language(%q) = %q, want %q", tc.tag, got, tc.want)
		}
	}
	es, err := New(Options{DefaultLanguage: "es-MX"})
	if err != nil {
		t.Fatal(err)
	}
	if got := es.Language("ja"); got != "es" {
		t.Errorf("with default es-MX, Language(ja) = %q, want es", got)
	}
	if got := es.Text("ko", Greeting, nil); got != builtin["es"][Greeting] {
		t.Errorf("with default es-MX, a Korean user is greeted %q", got)
	}
}

func TestTextFillsPlaceholders(t *testing.T) {
	c := Builtin()
	got := c.Text("es", FileTooLarge, Vars{"name": "a.zip", "platform": "Discord"})
	if want := "📎 a.zip es demasiado grande para enviarlo por Discord"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// A value is not read for placeholders again, and unknown ones stay as written.
	got = c.Text("en", TicketWelcome, Vars{"user": "{thread}", "thread": "x"})
	if !strings.HasPrefix(got, "{thread} this is") {
		t.Errorf("got %q", got)
	}
	if got := c.Text("en", FileEmpty, nil); got != "📎 {name} is empty" {
		t.Errorf("without vars: %q", got)
	}
}

func TestAgentLanguage(t *testing.T) {
	c, err := New(Options{AgentLanguage: "de-DE", DefaultLanguage: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Agent(AgentEdited, nil), builtin["de"][AgentEdited]; got != want {
		t.Errorf("Agent = %q, want %q", got, want)
	}
	if c.AgentLanguage() != "de" || c.DefaultLanguage() != "fr" {
		t.Errorf("languages: agent %q default %q", c.AgentLanguage(), c.DefaultLanguage())
	}
	if _, err := New(Options{AgentLanguage: "deutsch!", DefaultLanguage: "?"}); err == nil ||
		!strings.Contains(err.Error(), "agent language") || !strings.Contains(err.Error(), "default language") {
		t.Errorf("bad tags: %v", err)
	}
}

func TestOverridesMergeIntoTheBuiltInTexts(t *testing.T) {
	over, problems, err := Parse([]byte(`{
		"es": {"greeting": "¡Buenas! ¿En qué podemos ayudarte?"},
		"pt_br": {"file_empty": "📎 O arquivo {name} veio vazio"},
		"it": {"greeting": "Ciao! Scrivici qui la tua domanda."}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if !p.Missing || p.Language != "it" {
			t.Errorf("unexpected problem %s", p)
		}
	}
	if len(problems) != len(Keys())-1 {
		t.Errorf("%d problems, want one missing per key Italian leaves out (%d)", len(problems), len(Keys())-1)
	}
	c, err := New(Options{Overrides: over, DefaultLanguage: "en"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lang string
		key  Key
		want string
	}{
		{"es", Greeting, "¡Buenas! ¿En qué podemos ayudarte?"},
		{"es", CSATPrompt, builtin["es"][CSATPrompt]}, // not overridden: kept
		{"pt", FileEmpty, "📎 O arquivo x.pdf veio vazio"},
		{"it-IT", Greeting, "Ciao! Scrivici qui la tua domanda."},
		{"it", CSATPrompt, builtin["en"][CSATPrompt]}, // left out: the default language's
	} {
		if got := c.Text(tc.lang, tc.key, Vars{"name": "x.pdf"}); got != tc.want {
			t.Errorf("Text(%s, %s) = %q, want %q", tc.lang, tc.key, got, tc.want)
		}
	}
	if !slices.Contains(c.Languages(), "it") {
		t.Errorf("languages %v lack it", c.Languages())
	}
}

func TestParseReportsEveryMalformedEntry(t *testing.T) {
	_, problems, err := Parse([]byte(`{
		"english!": {"greeting": "Hi"},
		"es": {
			"greting": "Hola",
			"csat_prompt": "  ",
			"file_too_large": "📎 {name} es demasiado grande",
			"file_empty": "📎 {nombre} está vacío",
			"greeting": "Hola"
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`es.csat_prompt: empty text`,
		`es.file_empty: lacks the placeholder {name}`,
		`es.file_too_large: lacks the placeholder {platform}`,
		`es.greting: unknown key (see docs/operations.md for the keys)`,
		`language "english!": not a language tag such as en, es or pt-BR`,
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, problems, _ = Parse([]byte(`{"es": {"file_empty": "📎 {name} {size} está vacío"}}`))
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "unknown placeholder {size}") {
		t.Errorf("extra placeholder: %v", problems)
	}
	for _, bad := range []string{``, `[]`, `{"es": "hola"}`, `{"es": {"greeting": 1}}`, `{} {}`} {
		if _, _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
