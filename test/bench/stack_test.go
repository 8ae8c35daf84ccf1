// Package bench measures the signer on loopback: signet's pipeline per image
// against the cosign CLI a user would run instead, on the same registry and
// KMS key, and the Lambda bootstrap's cold start under the runtime interface
// emulator. Run it with `make bench-signer`; docs/benchmarks.md has the
// figures. Nothing here asserts a duration: the benchmarks report them.
package bench

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/testenv"
)

// testRegistry is a registry on 127.0.0.1 that counts the HTTP requests it
// serves by User-Agent.
type testRegistry struct {
	host string
	// requests returns how many requests so far came from user agents
	// starting with agent.
	requests func(agent string) int
}

// dockerRegistry starts Debian's docker-registry (CNCF distribution 2.8) on
// 127.0.0.1 with filesystem storage in a temporary folder and deletes
// enabled. Its requests are counted from its access log.
func dockerRegistry(b testing.TB) testRegistry {
	b.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		b.Fatalf("docker-registry is not installed: run `make tools` (apt-get install docker-registry)")
	}
	dir := b.TempDir()
	port := testenv.FreePort(b)
	cfg := filepath.Join(dir, "config.yml")
	y := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
`, filepath.Join(dir, "data"), port)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting docker-registry: %v", err)
	}
	b.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = logf.Close()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testenv.WaitTCP(b, addr, 20*time.Second)
	return testRegistry{host: addr, requests: func(agent string) int {
		raw, err := os.ReadFile(logPath)
		if err != nil {
			b.Fatal(err)
		}
		return countAgent(raw, agent)
	}}
}

// countAgent counts the access-log lines (combined log format, the user
// agent last and quoted) of requests from user agents starting with agent.
func countAgent(log []byte, agent string) int {
	n := 0
	for line := range bytes.Lines(log) {
		line = bytes.TrimRight(line, "\r\n")
		if !bytes.HasPrefix(line, []byte("127.0.0.1 - - [")) || !bytes.HasSuffix(line, []byte(`"`)) {
			continue
		}
		i := bytes.LastIndex(line[:len(line)-1], []byte(`"`))
		if i >= 0 && bytes.HasPrefix(line[i+1:], []byte(agent)) {
			n++
		}
	}
	return n
}

// inProcessRegistry starts go-containerregistry's in-process registry (as
// testenv.Registry does) behind a handler that counts requests.
func inProcessRegistry(b testing.TB) testRegistry {
	b.Helper()
	var mu sync.Mutex
	agents := map[string]int{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents[r.UserAgent()]++
		mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	b.Cleanup(s.Close)
	return testRegistry{host: strings.TrimPrefix(s.URL, "http://"), requests: func(agent string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for a, c := range agents {
			if strings.HasPrefix(a, agent) {
				n += c
			}
		}
		return n
	}}
}

// pushFresh pushes a new random image (two 1 KiB layers) as host/repo:tag
// and returns its digest reference.
func pushFresh(b testing.TB, host, repo, tag string) name.Digest {
	b.Helper()
	return testenv.PushRandom(b, host, repo, tag, 1024, 2)
}

// pushEvent returns events/push.json with its id, repository, digest and tag
// replaced by those of ref.
func pushEvent(b testing.TB, id string, ref name.Digest, tag string) []byte {
	b.Helper()
	return testenv.Event(b, "push.json", id, ref.Context().RepositoryStr(), ref.DigestStr(), tag)
}

// signedTags fails b unless ref has one layer under its .sig tag and one
// under its .att tag: a cheap check, outside the timed loop, that what was
// timed did the work.
func signedTags(b testing.TB, ref name.Digest) {
	b.Helper()
	hex := ref.DigestStr()[len("sha256:"):]
	for _, suffix := range []string{".sig", ".att"} {
		tag := ref.Context().Tag("sha256-" + hex + suffix)
		img, err := remote.Image(tag)
		if err != nil {
			b.Fatalf("reading %s: %v", tag, err)
		}
		m, err := img.Manifest()
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Layers) != 1 {
			b.Fatalf("%s has %d layers, want 1", tag, len(m.Layers))
		}
	}
}
