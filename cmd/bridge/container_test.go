package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
)

// .env.example is what operators copy: every variable the bridge reads must be in it.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	params, err := env.GetFieldParams(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(string(b), -1) {
		listed[m[1]] = true
	}
	for _, p := range params {
		if !listed[p.Key] {
			t.Errorf(".env.example does not list %s", p.Key)
		}
	}
}

// No Dockerfile linter installs from the registries this project may use, so the properties
// the issue asks of the image are checked here: multi-stage, static, non-root, and a health
// check that needs no shell.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []struct{ what, re string }{
		{"a build stage", `(?m)^FROM golang:\S+ AS build$`},
		{"a final stage from the build", `(?m)^COPY --from=build `},
		{"a static binary", `CGO_ENABLED=0`},
		{"the bridge command", `\./cmd/bridge`},
		{"a non-root user", `(?m)^USER (nonroot|[1-9][0-9]*)`},
		{"an exec-form health check through the binary", `(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/bridge", "health"\]$`},
		{"an exec-form entrypoint", `(?m)^ENTRYPOINT \["/usr/local/bin/bridge"\]$`},
	} {
		if !regexp.MustCompile(want.re).MatchString(df) {
			t.Errorf("Dockerfile lacks %s (%s)", want.what, want.re)
		}
	}
	if n := strings.Count(df, "\nFROM "); n != 2 {
		t.Errorf("Dockerfile has %d stages, want 2", n)
	}
}
