package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one run of the bridge binary.
type Process struct {
	// AdminAddr is the admin listener's host:port, from the "admin listener up" log line.
	AdminAddr string

	cmd  *exec.Cmd
	logs *Logs
	done chan struct{}
	err  error // cmd.Wait's result, set before done closes
	wg   sync.WaitGroup
}

// Start runs bin with exactly env (nothing inherited, so no stray credential leaks in) and
// waits until its admin listener is up. Its stderr is kept in logs (shared across runs, so a
// test can read every run's logs together) and copied to echo when not nil.
func Start(ctx context.Context, bin string, env []string, logs *Logs) (*Process, error) {
	cmd := exec.Command(bin, "run")
	cmd.Env = env
	if goraceEnv := os.Getenv("GORACE"); goraceEnv != "" {
		cmd.Env = append(cmd.Env, "GORACE="+goraceEnv)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, logs: logs, done: make(chan struct{})}
	mark := logs.Len()
	p.wg.Go(func() { logs.readFrom(stderr) })
	go func() {
		p.wg.Wait() // stderr drained: every line is in logs before done closes
		p.err = cmd.Wait()
		close(p.done)
	}()
	addr, err := p.awaitAdmin(ctx, mark)
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.AdminAddr = addr
	return p, nil
}

func (p *Process) awaitAdmin(ctx context.Context, mark int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		changed := p.logs.changed()
		for _, line := range p.logs.LinesSince(mark) {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "admin listener up" {
				return l.Addr, nil
			}
		}
		select {
		case <-changed:
		case <-p.done:
			return "", fmt.Errorf("bridge exited before its admin listener was up (%v); stderr:\n%s", p.err, p.logs.Since(mark))
		case <-ctx.Done():
			return "", fmt.Errorf("bridge's admin listener not up: %w; stderr:\n%s", ctx.Err(), p.logs.Since(mark))
		}
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited and its stderr is read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit, at most timeout (then it is killed), and returns its
// exit code (-1 when killed by a signal).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
		return -1, fmt.Errorf("bridge did not exit within %s; killed", timeout)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Stop sends SIGTERM and waits up to timeout for a clean exit (code 0).
func (p *Process) Stop(timeout time.Duration) error {
	p.Signal(syscall.SIGTERM)
	code, err := p.Wait(timeout)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("bridge exited with code %d after SIGTERM", code)
	}
	return nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Get fetches an admin path (/readyz, /metrics, …) and returns its status and body.
func (p *Process) Get(ctx context.Context, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.AdminAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Logs collects the lines a bridge writes to stderr. It is safe for concurrent use.
type Logs struct {
	mu      sync.Mutex
	lines   []string
	size    int
	changeC chan struct{}
	// Echo, when set, gets every line as it arrives (e.g. t.Log).
	Echo func(line string)
}

// NewLogs returns an empty log.
func NewLogs(echo func(string)) *Logs { return &Logs{changeC: make(chan struct{}), Echo: echo} }

func (l *Logs) readFrom(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.size += len(line) + 1
		close(l.changeC)
		l.changeC = make(chan struct{})
		echo := l.Echo
		l.mu.Unlock()
		if echo != nil {
			echo(line)
		}
	}
}

func (l *Logs) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changeC
}

// Len is the number of lines so far.
func (l *Logs) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// LinesSince returns the lines from index mark on.
func (l *Logs) LinesSince(mark int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[min(mark, len(l.lines)):]...)
}

// Since returns the lines from mark on as one text.
func (l *Logs) Since(mark int) string { return strings.Join(l.LinesSince(mark), "\n") }

// String returns everything.
func (l *Logs) String() string { return l.Since(0) }

// Bytes is the total size of the log.
func (l *Logs) Bytes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// WaitFor waits until a line containing substr arrives after mark.
func (l *Logs) WaitFor(ctx context.Context, mark int, substr string) error {
	for {
		changed := l.changed()
		for _, line := range l.LinesSince(mark) {
			if strings.Contains(line, substr) {
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("no log line with %q: %w", substr, ctx.Err())
		}
	}
}

// Leaks returns the secrets (by position in secrets, never the value) that occur in the logs.
func (l *Logs) Leaks(secrets []string) []int {
	all := []byte(l.String())
	var idx []int
	for i, s := range secrets {
		if s != "" && bytes.Contains(all, []byte(s)) {
			idx = append(idx, i)
		}
	}
	return idx
}

// ErrorLines returns the lines at level error (or panics and data races).
func (l *Logs) ErrorLines() []string {
	var out []string
	for _, line := range l.LinesSince(0) {
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, "DATA RACE") || strings.HasPrefix(line, "panic:") {
			out = append(out, line)
		}
	}
	return out
}

// Check runs `bin check` with exactly env and returns what it printed on stdout (one line per
// check) and its exit code. Its stderr is kept in logs, like a run's, so the rig's log checks
// cover it.
func Check(ctx context.Context, bin string, env []string, logs *Logs) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check")
	cmd.Env = env
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	logs.readFrom(stderr) // returns at EOF, when the process has exited or closed stderr
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return stdout.String(), 0, err
	}
	return stdout.String(), 0, nil
}
