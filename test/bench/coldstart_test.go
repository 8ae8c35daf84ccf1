package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testenv"
)

// warmInvocations is how many warm invocations follow each cold one.
const warmInvocations = 5

// BenchmarkColdStart measures the signer Lambda's bootstrap, built for this
// machine the way `make lambda` builds it, under the Lambda runtime interface
// emulator on docker-registry, local-kms and dynalite. Each iteration starts
// a new emulator (a new execution environment), invokes it with the push
// event of a fresh image (cold), then warmInvocations times more (warm). It
// reports medians over the iterations:
//
//   - init-ms: from the bootstrap's exec to its "signer ready" log line
//     (AWS config, KMS public key read, clients built); rie-init-ms: the
//     emulator's own INIT REPORT, until the runtime first asks for an event;
//   - cold-ms, warm-ms: invocation latency seen by the caller, the first and
//     the median of the warm ones; cold-extra-ms: the first minus the warm
//     median of the same environment;
//   - rss-MB: the bootstrap's peak resident memory (VmHWM) after the
//     invocations;
//   - bootstrap-MB, arm64-MB: the size of this machine's bootstrap and of the
//     arm64 one that `make lambda` builds (dist/signer/bootstrap, built here
//     with the same flags when absent).
func BenchmarkColdStart(b *testing.B) {
	testenv.AWSEnv(b)
	k := testenv.StartKMS(b)
	dyn := testenv.StartDynamo(b)
	host := dockerRegistry(b).host
	bootstrap := buildBootstrap(b, "", filepath.Join(b.TempDir(), "bootstrap"))
	arm64 := filepath.Join(testenv.Root(), "dist", "signer", "bootstrap")
	if _, err := os.Stat(arm64); err != nil {
		arm64 = buildBootstrap(b, "arm64", filepath.Join(b.TempDir(), "bootstrap-arm64"))
	}
	env := []string{
		"SIGNET_KMS_KEY=" + k.KeyRef, "SIGNET_TABLE=" + dyn.Table, "SIGNET_REGISTRY=" + host,
		"AWS_ENDPOINT_URL_KMS=" + k.Endpoint, "AWS_ENDPOINT_URL_DYNAMODB=" + dyn.Endpoint,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60",
	}

	var inits, rieInits, colds, warms, extras, rss []float64
	b.ResetTimer()
	for i := range b.N {
		r := startRIE(b, bootstrap, env)
		tag := fmt.Sprintf("cold%d-%d", b.N, i)
		ref := pushFresh(b, host, "bench/lambda", tag)
		cold := r.invoke(b, pushEvent(b, "cold-"+tag, ref, tag))
		var w []float64
		for j := range warmInvocations {
			tag := fmt.Sprintf("warm%d-%d-%d", b.N, i, j)
			ref := pushFresh(b, host, "bench/lambda", tag)
			w = append(w, r.invoke(b, pushEvent(b, "warm-"+tag, ref, tag)))
		}
		colds, warms, extras = append(colds, cold), append(warms, median(w)), append(extras, cold-median(w))
		inits = append(inits, r.initMillis(b))
		rieInits = append(rieInits, r.rieInitMillis(b))
		rss = append(rss, r.peakRSS(b))
		r.stop()
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(inits), "init-ms")
	b.ReportMetric(median(rieInits), "rie-init-ms")
	b.ReportMetric(median(colds), "cold-ms")
	b.ReportMetric(median(warms), "warm-ms")
	b.ReportMetric(median(extras), "cold-extra-ms")
	b.ReportMetric(median(rss), "rss-MB")
	b.ReportMetric(fileMB(b, bootstrap), "bootstrap-MB")
	b.ReportMetric(fileMB(b, arm64), "arm64-MB")
}

// buildBootstrap builds functions/signer as `make lambda` does (static,
// -tags lambda.norpc, -trimpath, stripped) for goarch ("" for this
// machine's) into out.
func buildBootstrap(b testing.TB, goarch, out string) string {
	b.Helper()
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out, "./functions/signer")
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+goarch)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the signer bootstrap (GOARCH=%q): %v\n%s", goarch, err, msg)
	}
	return out
}

// rie is one runtime interface emulator running the bootstrap.
type rie struct {
	cmd    *exec.Cmd
	url    string
	execAt string // file where the wrapper writes the exec time
	mu     sync.Mutex
	out    bytes.Buffer // the emulator's and the bootstrap's output
	done   chan struct{}
}

func (r *rie) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(p)
}

// startRIE starts aws-lambda-rie on two free ports with a wrapper that
// records the time it execs bootstrap.
func startRIE(b testing.TB, bootstrap string, env []string) *rie {
	b.Helper()
	dir := b.TempDir()
	r := &rie{execAt: filepath.Join(dir, "exec-ns"), done: make(chan struct{})}
	wrapper := filepath.Join(dir, "bootstrap-wrapper")
	script := fmt.Sprintf("#!/bin/sh\ndate +%%s%%N > %s\nexec %s \"$@\"\n", r.execAt, bootstrap)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	port, rapi := testenv.FreePort(b), testenv.FreePort(b)
	r.cmd = exec.Command(testenv.Tool(b, "aws-lambda-rie", testenv.RIEVersion),
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", rapi),
		wrapper)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	r.cmd.Stdout, r.cmd.Stderr = r, r
	// Wait returns even if a child of the emulator still holds its output.
	r.cmd.WaitDelay = time.Second
	if err := r.cmd.Start(); err != nil {
		b.Fatalf("starting aws-lambda-rie: %v", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	b.Cleanup(r.stop)
	testenv.WaitTCP(b, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second)
	r.url = fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
	return r
}

// stop kills the emulator and the bootstrap.
func (r *rie) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// invoke posts event and returns the latency in milliseconds; the function
// must answer SIGNED.
func (r *rie) invoke(b testing.TB, event []byte) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(event))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("invoking the signer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	ms := float64(time.Since(start)) / float64(time.Millisecond)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"outcome":"SIGNED"`)) {
		b.Fatalf("invoking the signer = %d %s, %v; want 200 with outcome SIGNED; output:\n%s", resp.StatusCode, body, err, r.output())
	}
	return ms
}

func (r *rie) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// initMillis is the time from the wrapper's exec of the bootstrap to the
// bootstrap's "signer ready" log line (slog JSON, millisecond times).
func (r *rie) initMillis(b testing.TB) float64 {
	b.Helper()
	raw, err := os.ReadFile(r.execAt)
	if err != nil {
		b.Fatalf("the bootstrap wrapper did not record its exec time: %v", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		b.Fatalf("exec time %q: %v", raw, err)
	}
	sc := bufio.NewScanner(strings.NewReader(r.output()))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"msg":"signer ready"`) {
			continue
		}
		i := strings.Index(line, `"time":"`)
		if i < 0 {
			break
		}
		ts, _, _ := strings.Cut(line[i+len(`"time":"`):], `"`)
		ready, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			b.Fatalf("time of %q: %v", line, err)
		}
		return float64(ready.Sub(time.Unix(0, ns))) / float64(time.Millisecond)
	}
	b.Fatalf("no \"signer ready\" line in the output:\n%s", r.output())
	return 0
}

// rieInitMillis is the duration of the emulator's INIT REPORT line, from
// starting the runtime until it first asks for an event. (Its REPORT lines'
// "Init Duration" and "Max Memory Used" are not measured: they are fixed.)
func (r *rie) rieInitMillis(b testing.TB) float64 {
	b.Helper()
	out := r.output()
	const marker = "INIT REPORT(durationMs: "
	i := strings.Index(out, marker)
	if i < 0 {
		b.Fatalf("no %q in the emulator's output:\n%s", marker, out)
	}
	v, _, _ := strings.Cut(out[i+len(marker):], ")")
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil {
		b.Fatalf("INIT REPORT duration %q: %v", v, err)
	}
	return ms
}

// peakRSS is the bootstrap's VmHWM in MB (2^20 bytes), found among the
// emulator's children.
func (r *rie) peakRSS(b testing.TB) float64 {
	b.Helper()
	// A child started by any of the emulator's threads is listed under that
	// thread's task.
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", r.cmd.Process.Pid))
	var kids []string
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		kids = append(kids, strings.Fields(string(raw))...)
	}
	for _, f := range kids {
		status, err := os.ReadFile("/proc/" + f + "/status")
		if err != nil || !bytes.HasPrefix(status, []byte("Name:\tbootstrap\n")) {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					b.Fatalf("VmHWM %q: %v", v, err)
				}
				return kb / 1024
			}
		}
	}
	b.Fatalf("no bootstrap process among the children %v of aws-lambda-rie %d", kids, r.cmd.Process.Pid)
	return 0
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fileMB(b testing.TB, path string) float64 {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return float64(fi.Size()) / (1 << 20)
}
