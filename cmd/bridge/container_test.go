package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// composeOnly are variables .env.example lists for docker-compose.yml, not for the bridge.
var composeOnly = map[string]bool{"BRIDGE_DB_PASSWORD": true}

// .env.example is what operators copy and README's table what they read: both list exactly
// the variables the bridge reads, its own and every adapter's Config's, so a variable added to
// an adapter is documented and a variable removed is not left behind.
func TestConfigurationIsDocumented(t *testing.T) {
	params, err := envParams()
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, p := range params {
		read[p.Key] = true
	}
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "\n## Configuration\n")
	table, _, _ = strings.Cut(table, "\n## ")
	docs := map[string]map[string]bool{".env.example": {}, "README's configuration table": {}}
	for _, m := range regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(string(example), -1) {
		docs[".env.example"][m[1]] = true
	}
	for _, row := range regexp.MustCompile(`(?m)^\| ([^|]*)\|`).FindAllStringSubmatch(table, -1) {
		for _, m := range regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(row[1], -1) {
			docs["README's configuration table"][m[1]] = true
		}
	}
	if len(docs["README's configuration table"]) == 0 {
		t.Fatal("README.md has no configuration table under ## Configuration")
	}
	for doc, listed := range docs {
		for name := range read {
			if !listed[name] {
				t.Errorf("%s does not list %s", doc, name)
			}
		}
		for name := range listed {
			if !read[name] && !composeOnly[name] {
				t.Errorf("%s lists %s, which no configuration reads", doc, name)
			}
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
