// Command report reads the output of the signer benchmarks (test/bench) on
// its standard input, copies it to its standard output, and then prints the
// figures side by side: signet and the cosign CLI per image with their
// ratio, and the Lambda bootstrap's size and cold start.
//
//	go test -run '^$' -bench . ./test/bench | go run ./test/bench/report
//
// It exits 1 when a figure is missing, so a failed benchmark fails the
// make target.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	results, err := parse(io.TeeReader(os.Stdin, os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	fmt.Println()
	if err := summarize(os.Stdout, results); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// Result is one benchmark line: its name without the GOMAXPROCS suffix, its
// iterations, and its metrics by unit.
type Result struct {
	Name    string
	N       int
	Metrics map[string]float64
}

// parse reads `go test -bench` output and returns its benchmark lines by
// name; a name seen twice keeps its last line.
func parse(r io.Reader) (map[string]Result, error) {
	out := map[string]Result{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		res, ok := parseLine(sc.Text())
		if ok {
			out[res.Name] = res
		}
	}
	return out, sc.Err()
}

// parseLine parses "BenchmarkName-2  20  123 ns/op  4.5 ms/image ...".
func parseLine(line string) (Result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return Result{}, false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return Result{}, false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	res := Result{Name: name, N: n, Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics[f[i+1]] = v
	}
	return res, true
}

// summarize prints the figures; it fails naming every missing one.
func summarize(w io.Writer, results map[string]Result) error {
	var missing []string
	get := func(name, unit string) float64 {
		r, ok := results[name]
		if !ok {
			missing = append(missing, name)
			return 0
		}
		v, ok := r.Metrics[unit]
		if !ok {
			missing = append(missing, name+" "+unit)
		}
		return v
	}
	fmt.Fprintln(w, "signer, per image: sign + attest (signet also locks and records the verdict); same registry, same local-kms key, interleaved")
	for _, reg := range []struct{ name, label string }{
		{"docker-registry", "docker-registry 2.8"},
		{"in-process", "in-process registry"},
	} {
		n := "BenchmarkPerImage/" + reg.name
		fmt.Fprintf(w, "  %-20s  signet %6.1f ms  cosign CLI %6.1f ms  cosign/signet %.2fx  (%d images each)\n",
			reg.label, get(n, "signet-ms/image"), get(n, "cosign-ms/image"), get(n, "cosign/signet"), results[n].N)
		fmt.Fprintf(w, "  %-20s  signet: KMS %.1f ms, DynamoDB %.1f ms, %.0f registry requests; cosign: sign %.0f ms + attest %.0f ms, %.0f registry requests, %.0f ms to start the CLI\n",
			"", get(n, "signet-kms-ms/image"), get(n, "signet-dynamo-ms/image"), get(n, "signet-requests/image"),
			get(n, "cosign-sign-ms/image"), get(n, "cosign-attest-ms/image"), get(n, "cosign-requests/image"), get(n, "cosign-startup-ms"))
	}
	const cold = "BenchmarkColdStart"
	fmt.Fprintf(w, "signer Lambda bootstrap: %.1f MiB (this machine), %.1f MiB (linux/arm64, make lambda)\n",
		get(cold, "bootstrap-MB"), get(cold, "arm64-MB"))
	fmt.Fprintf(w, "cold start under aws-lambda-rie (medians of %d environments): init %.1f ms (exec to ready; RIE INIT REPORT %.1f ms), first invocation %.1f ms, warm %.1f ms, first minus warm %.1f ms, peak RSS %.1f MiB\n",
		results[cold].N, get(cold, "init-ms"), get(cold, "rie-init-ms"), get(cold, "cold-ms"), get(cold, "warm-ms"), get(cold, "cold-extra-ms"), get(cold, "rss-MB"))
	if len(missing) > 0 {
		return errors.New("missing from the benchmark output: " + strings.Join(missing, ", "))
	}
	return nil
}
