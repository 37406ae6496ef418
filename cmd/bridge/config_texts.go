package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/onechat/onechat-bridge/texts"
)

// TextSettings choose the languages the bridge speaks and the operator's own texts.
type TextSettings struct {
	// DefaultLanguage is the language of users whose own is unknown or not in the catalogue.
	DefaultLanguage string `env:"BRIDGE_DEFAULT_LANGUAGE" envDefault:"en"`
	// AgentLanguage is the language of the notes the bridge adds for agents.
	AgentLanguage string `env:"BRIDGE_AGENT_LANGUAGE" envDefault:"en"`
	// MessagesFile names a JSON file that changes texts or adds languages:
	// {"es": {"greeting": "¡Hola!"}, "it": {...}} (docs/operations.md).
	MessagesFile string `env:"BRIDGE_MESSAGES_FILE"`

	catalogue *texts.Catalogue
	// missing are the keys a language added by the file leaves out: the file works (those
	// texts are the default language's), and `bridge check` lists them.
	missing []texts.Problem
}

// validate reads the messages file and builds the catalogue. A malformed entry (a bad language
// tag, an unknown key, an empty text, a placeholder lost or unknown) is an error, so a typo
// never reaches users as a half-filled text; a key left out of an added language is not.
func (s *TextSettings) validate() []error {
	var errs []error
	var overrides map[string]map[texts.Key]string
	if s.MessagesFile != "" {
		over, problems, err := texts.Load(s.MessagesFile)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, fmt.Errorf("BRIDGE_MESSAGES_FILE: %s: %w", s.MessagesFile, err))
		}
		for _, p := range problems {
			if p.Missing {
				s.missing = append(s.missing, p)
				continue
			}
			errs = append(errs, fmt.Errorf("BRIDGE_MESSAGES_FILE: %s", p))
		}
		overrides = over
	}
	c, err := texts.New(texts.Options{DefaultLanguage: s.DefaultLanguage, AgentLanguage: s.AgentLanguage, Overrides: overrides})
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			name := "BRIDGE_DEFAULT_LANGUAGE"
			if strings.HasPrefix(e, "agent") {
				name = "BRIDGE_AGENT_LANGUAGE"
			}
			errs = append(errs, fmt.Errorf("%s: %s", name, e))
		}
		return errs
	}
	s.catalogue = c
	return errs
}

// Catalogue returns the catalogue validate built (the built-in one before).
func (s *TextSettings) Catalogue() *texts.Catalogue {
	if s.catalogue == nil {
		return texts.Builtin()
	}
	return s.catalogue
}

// checkTexts is `bridge check`'s line for the catalogue: its languages, or the entries of
// BRIDGE_MESSAGES_FILE that are missing (malformed ones already failed the configuration).
func checkTexts(s TextSettings) checkResult {
	c := s.Catalogue()
	if len(s.missing) > 0 {
		lines := make([]string, len(s.missing))
		for i, p := range s.missing {
			lines[i] = p.String()
		}
		return checkResult{name: "messages", detail: fmt.Sprintf("%d texts missing from BRIDGE_MESSAGES_FILE: %s", len(lines), strings.Join(lines, "; ")),
			hint: "add those keys to the language in " + s.MessagesFile + " (docs/operations.md lists every key), or accept the default language's texts"}
	}
	detail := fmt.Sprintf("languages %s; users default to %s, agents read %s", strings.Join(c.Languages(), ", "), c.DefaultLanguage(), c.AgentLanguage())
	if s.MessagesFile != "" {
		detail += "; with " + s.MessagesFile
	}
	return checkResult{name: "messages", ok: true, detail: detail}
}
