// Package texts is the bridge's message catalogue: everything the bridge itself says to users
// (a greeting, acknowledgements, notices, button labels, notes about files) and to agents (notes
// about edits, deletes and files), in English, Spanish, Portuguese (Brazil), Russian, Ukrainian,
// German and French.
//
// Texts are named by typed keys and may hold placeholders in braces ("{name}"), filled by the
// caller. A user's text is chosen by the user's language tag (BCP 47, as the platforms report
// it: "pt-BR", "es-419", "en"), falling back to the closest language the catalogue has and then
// to the default language; an operator's file (BRIDGE_MESSAGES_FILE) changes any text or adds
// a language. The package imports nothing of the project, so the core and every adapter share
// one catalogue.
package texts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Reference is the language whose texts define each key's placeholders, and the last fallback.
const Reference = "en"

// Vars are the values of a text's placeholders, by name without braces.
type Vars map[string]string

// Catalogue holds every text in every language. It is immutable once built and safe for
// concurrent use.
type Catalogue struct {
	texts map[string]map[Key]string // canonical language tag → key → text
	def   string                    // users' default language, a key of texts
	agent string                    // agents' language, a key of texts
}

// Options configure New.
type Options struct {
	// DefaultLanguage is the language of users whose language is unknown or not in the
	// catalogue; empty means English.
	DefaultLanguage string
	// AgentLanguage is the language of the notes for agents; empty means English.
	AgentLanguage string
	// Overrides change texts or add languages (see Parse). Their problems must have been
	// reported already: New takes what is well-formed and ignores the rest.
	Overrides map[string]map[Key]string
}

// New builds a catalogue from the built-in texts and opts.Overrides. It fails when a language
// option is not a language tag; a language tag the catalogue has no texts for falls back like a
// user's (e.g. "pt" to "pt-BR", "xx" to English).
func New(opts Options) (*Catalogue, error) {
	c := &Catalogue{texts: make(map[string]map[Key]string, len(builtin)+len(opts.Overrides))}
	for lang, texts := range builtin {
		c.texts[lang] = maps.Clone(texts)
	}
	for lang, texts := range opts.Overrides {
		tag, ok := Canonical(lang)
		if !ok {
			continue
		}
		if c.texts[tag] == nil {
			c.texts[tag] = make(map[Key]string, len(texts))
		}
		for k, v := range texts {
			if _, known := builtin[Reference][k]; known && v != "" {
				c.texts[tag][k] = v
			}
		}
	}
	c.def, c.agent = Reference, Reference
	var errs []error
	for _, o := range []struct {
		name, value string
		dst         *string
	}{{"default language", opts.DefaultLanguage, &c.def}, {"agent language", opts.AgentLanguage, &c.agent}} {
		if o.value == "" {
			continue
		}
		tag, ok := Canonical(o.value)
		if !ok {
			errs = append(errs, fmt.Errorf("%s %q is not a language tag such as en, es or pt-BR", o.name, o.value))
			continue
		}
		*o.dst = c.match(tag, Reference)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Builtin returns the catalogue of built-in texts with English as the default and agent language.
func Builtin() *Catalogue {
	c, _ := New(Options{}) // cannot fail without options
	return c
}

// Languages returns the catalogue's languages, sorted.
func (c *Catalogue) Languages() []string {
	return slices.Sorted(maps.Keys(c.texts))
}

// DefaultLanguage returns the users' default language.
func (c *Catalogue) DefaultLanguage() string { return c.def }

// AgentLanguage returns the agents' language.
func (c *Catalogue) AgentLanguage() string { return c.agent }

// Language returns the catalogue language a user with the language tag lang is spoken to in:
// the tag itself when the catalogue has it, else its shorter forms ("zh-Hant-TW", "zh-Hant",
// "zh"), else another variety of the same language ("pt" and "pt-PT" → "pt-BR"), else the default
// language. Tags are compared case-insensitively and "_" counts as "-" ("pt_br" is "pt-BR").
func (c *Catalogue) Language(lang string) string {
	tag, ok := Canonical(lang)
	if !ok {
		return c.def
	}
	return c.match(tag, c.def)
}

func (c *Catalogue) match(tag, fallback string) string {
	for t := tag; t != ""; {
		if _, ok := c.texts[t]; ok {
			return t
		}
		i := strings.LastIndexByte(t, '-')
		if i < 0 {
			break
		}
		t = t[:i]
	}
	primary, _, _ := strings.Cut(tag, "-")
	for _, l := range c.Languages() {
		if p, _, _ := strings.Cut(l, "-"); p == primary {
			return l
		}
	}
	return fallback
}

// Text returns the text of k for a user whose language tag is lang ("" when unknown), with
// its placeholders filled from vars. A language that lacks the key (one an operator added)
// falls back to the default language, then to English.
func (c *Catalogue) Text(lang string, k Key, vars Vars) string {
	return c.text(c.Language(lang), k, vars)
}

// Agent returns the text of k in the agents' language, with its placeholders filled from vars.
func (c *Catalogue) Agent(k Key, vars Vars) string {
	return c.text(c.agent, k, vars)
}

func (c *Catalogue) text(lang string, k Key, vars Vars) string {
	s, ok := c.texts[lang][k]
	if !ok {
		if s, ok = c.texts[c.def][k]; !ok {
			s = c.texts[Reference][k]
		}
	}
	return fill(s, vars)
}

// fill replaces each {name} whose name is in vars; other braces stay as they are.
func fill(s string, vars Vars) string {
	if len(vars) == 0 || !strings.Contains(s, "{") {
		return s
	}
	return placeholderRE.ReplaceAllStringFunc(s, func(p string) string {
		if v, ok := vars[p[1:len(p)-1]]; ok {
			return v
		}
		return p
	})
}

var placeholderRE = regexp.MustCompile(`\{[a-z_]+\}`)

// placeholders returns the distinct placeholder names of s, sorted.
func placeholders(s string) []string {
	var names []string
	for _, p := range placeholderRE.FindAllString(s, -1) {
		names = append(names, p[1:len(p)-1])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Placeholders returns the placeholder names (without braces) the English text of k has, which
// every other text of k keeps.
func Placeholders(k Key) []string { return placeholders(builtin[Reference][k]) }

var tagRE = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$`)

// Canonical returns lang as a canonical BCP 47 tag ("pt_br" → "pt-BR", "ZH-hant-tw" →
// "zh-Hant-TW", "es-419") and whether it is one: a primary language of two or three letters and
// subtags of one to eight letters or digits.
func Canonical(lang string) (string, bool) {
	lang = strings.TrimSpace(lang)
	if !tagRE.MatchString(lang) {
		return "", false
	}
	parts := strings.FieldsFunc(lang, func(r rune) bool { return r == '-' || r == '_' })
	for i, p := range parts {
		switch {
		case i == 0:
			parts[i] = strings.ToLower(p)
		case len(p) == 2 && isLetters(p):
			parts[i] = strings.ToUpper(p) // region
		case len(p) == 4 && isLetters(p):
			parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:]) // script
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-"), true
}

func isLetters(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// Problem is one entry of an overrides file that is missing or malformed.
type Problem struct {
	Language string // as written in the file
	Key      string // "" for a problem with the whole language
	Message  string
	// Missing says the key is only left out of a language the bridge does not ship: the text
	// falls back to the default language, so the file is usable as it is.
	Missing bool
}

func (p Problem) String() string {
	if p.Key == "" {
		return fmt.Sprintf("language %q: %s", p.Language, p.Message)
	}
	return fmt.Sprintf("%s.%s: %s", p.Language, p.Key, p.Message)
}

// Parse reads an overrides file: a JSON object from language tag to an object from key to text,
// e.g. {"es": {"greeting": "¡Hola!"}, "it": {...}}. It returns the overrides and every problem
// found: a tag that is not a language tag, an unknown key, an empty text, a text that lacks a
// placeholder the English text has or has one it does not, and, for a language the bridge does
// not ship, each key it leaves out (that text falls back to the default language). An error
// means the file could not be read as such an object at all.
func Parse(data []byte) (map[string]map[Key]string, []Problem, error) {
	var raw map[string]map[string]string
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object of languages, each an object of texts: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("not a JSON object of languages: more follows the object")
	}
	var problems []Problem
	out := make(map[string]map[Key]string, len(raw))
	for _, lang := range slices.Sorted(maps.Keys(raw)) {
		tag, ok := Canonical(lang)
		if !ok {
			problems = append(problems, Problem{Language: lang, Message: "not a language tag such as en, es or pt-BR"})
			continue
		}
		texts := make(map[Key]string, len(raw[lang]))
		for _, k := range slices.Sorted(maps.Keys(raw[lang])) {
			v := raw[lang][k]
			ref, known := builtin[Reference][Key(k)]
			switch {
			case !known:
				problems = append(problems, Problem{lang, k, "unknown key (see docs/operations.md for the keys)", false})
				continue
			case strings.TrimSpace(v) == "":
				problems = append(problems, Problem{lang, k, "empty text", false})
				continue
			}
			want, got := placeholders(ref), placeholders(v)
			if missing := difference(want, got); len(missing) > 0 {
				problems = append(problems, Problem{lang, k, "lacks the placeholder " + braces(missing), false})
				continue
			}
			if extra := difference(got, want); len(extra) > 0 {
				problems = append(problems, Problem{lang, k, "has an unknown placeholder " + braces(extra) + " (known: " + braces(want) + ")", false})
				continue
			}
			texts[Key(k)] = v
		}
		if _, shipped := builtin[tag]; !shipped {
			for _, k := range Keys() {
				if _, ok := raw[lang][string(k)]; !ok {
					problems = append(problems, Problem{lang, string(k), "missing (the default language's text is used)", true})
				}
			}
		}
		if out[tag] == nil {
			out[tag] = texts
		} else {
			maps.Copy(out[tag], texts)
		}
	}
	return out, problems, nil
}

// Load reads the overrides file at path with Parse.
func Load(path string) (map[string]map[Key]string, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(data)
}

func difference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func braces(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	b := make([]string, len(names))
	for i, n := range names {
		b[i] = "{" + n + "}"
	}
	return strings.Join(b, ", ")
}
