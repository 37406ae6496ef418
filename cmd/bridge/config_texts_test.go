package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/texts"
)

func writeMessages(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "messages.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMessagesFileChangesTextsAndLanguages(t *testing.T) {
	path := writeMessages(t, `{"es": {"greeting": "¡Buenas!"}, "it": {"greeting": "Ciao!"}}`)
	cfg, err := LoadConfig(append(validEnv(), "BRIDGE_MESSAGES_FILE="+path, "BRIDGE_DEFAULT_LANGUAGE=pt", "BRIDGE_AGENT_LANGUAGE=de-CH"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Texts.Catalogue()
	if got := c.Text("es-AR", texts.Greeting, nil); got != "¡Buenas!" {
		t.Errorf("Spanish greeting %q", got)
	}
	if got := c.Text("it", texts.Greeting, nil); got != "Ciao!" {
		t.Errorf("Italian greeting %q", got)
	}
	if got, want := c.Text("ja", texts.Greeting, nil), texts.Builtin().Text("pt-BR", texts.Greeting, nil); got != want {
		t.Errorf("a Japanese user is greeted %q, want the default language's (pt-BR) %q", got, want)
	}
	if c.AgentLanguage() != "de" {
		t.Errorf("agent language %q, want de", c.AgentLanguage())
	}
	// Italian leaves every other key out: usable, but `bridge check` lists them.
	r := checkTexts(cfg.Texts)
	if r.ok || !strings.Contains(r.detail, "it.csat_prompt: missing") || !strings.Contains(r.hint, path) {
		t.Errorf("check line: %s", r)
	}
	cfg, err = LoadConfig(append(validEnv(), "BRIDGE_MESSAGES_FILE="+writeMessages(t, `{"es": {"greeting": "¡Buenas!"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	if r := checkTexts(cfg.Texts); !r.ok || !strings.Contains(r.detail, "languages de, en, es, fr, pt-BR, ru, uk; users default to en, agents read en") {
		t.Errorf("check line: %s", r)
	}
}

func TestMalformedMessagesFileFailsTheConfiguration(t *testing.T) {
	path := writeMessages(t, `{"es": {"greting": "Hola", "file_empty": "vacío"}, "español": {"greeting": "Hola"}}`)
	// `bridge check` prints each problem as a failed config line.
	var stdout bytes.Buffer
	code := realMain([]string{"check"}, append(validEnv(), "BRIDGE_MESSAGES_FILE="+path, "BRIDGE_DEFAULT_LANGUAGE=english", "BRIDGE_AGENT_LANGUAGE=?"), &stdout, &bytes.Buffer{})
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, stdout.String())
	}
	for _, want := range []string{
		"BRIDGE_MESSAGES_FILE: es.greting: unknown key",
		"BRIDGE_MESSAGES_FILE: es.file_empty: lacks the placeholder {name}",
		`BRIDGE_MESSAGES_FILE: language "español": not a language tag`,
		`BRIDGE_DEFAULT_LANGUAGE: default language "english" is not a language tag`,
		`BRIDGE_AGENT_LANGUAGE: agent language "?" is not a language tag`,
	} {
		if !strings.Contains(stdout.String(), "FAIL  config     "+want) {
			t.Errorf("no line %q in:\n%s", want, stdout.String())
		}
	}
	for _, content := range []string{`{"es": "hola"}`, `not json`} {
		_, err := LoadConfig(append(validEnv(), "BRIDGE_MESSAGES_FILE="+writeMessages(t, content)))
		if err == nil || !strings.Contains(err.Error(), "BRIDGE_MESSAGES_FILE: ") {
			t.Errorf("%s: %v", content, err)
		}
	}
	_, err := LoadConfig(append(validEnv(), "BRIDGE_MESSAGES_FILE=/nonexistent/messages.json"))
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_MESSAGES_FILE: /nonexistent/messages.json: no such file") {
		t.Errorf("missing file: %v", err)
	}
}
