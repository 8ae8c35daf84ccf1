package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Result
		ok   bool
	}{
		{"sub-benchmark", "BenchmarkPerImage/docker-registry-2  \t      20\t 265366160 ns/op\t        30.42 signet-dynamo-ms/image\t       1.49 cosign/signet",
			Result{Name: "BenchmarkPerImage/docker-registry", N: 20, Metrics: map[string]float64{"ns/op": 265366160, "signet-dynamo-ms/image": 30.42, "cosign/signet": 1.49}}, true},
		{"no ns/op", "BenchmarkColdStart-2   \t       5\t        13.56 arm64-MB\t        24.46 init-ms",
			Result{Name: "BenchmarkColdStart", N: 5, Metrics: map[string]float64{"arm64-MB": 13.56, "init-ms": 24.46}}, true},
		{"no GOMAXPROCS suffix", "BenchmarkPerImage/in-process 3 1 ms/image",
			Result{Name: "BenchmarkPerImage/in-process", N: 3, Metrics: map[string]float64{"ms/image": 1}}, true},
		{"name only (-v)", "BenchmarkColdStart", Result{}, false},
		{"log line", "    coldstart_test.go:74: no bootstrap process", Result{}, false},
		{"header", "goos: linux", Result{}, false},
		{"odd fields", "BenchmarkX-2 3 1 ms/image 2", Result{}, false},
		{"not a number", "BenchmarkX-2 3 fast ms/image", Result{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseLine(tc.line)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseLine(%q) = %+v, %v, want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	out := `goos: linux
BenchmarkPerImage/docker-registry-2  20  150 cosign-attest-ms/image  300 cosign-ms/image  27 cosign-requests/image  150 cosign-sign-ms/image  50 cosign-startup-ms  3 cosign/signet  20 signet-dynamo-ms/image  2 signet-kms-ms/image  100 signet-ms/image  28 signet-requests/image
BenchmarkPerImage/in-process-2  20  75 cosign-attest-ms/image  150 cosign-ms/image  27 cosign-requests/image  75 cosign-sign-ms/image  50 cosign-startup-ms  6 cosign/signet  20 signet-dynamo-ms/image  2 signet-kms-ms/image  25 signet-ms/image  28 signet-requests/image
BenchmarkColdStart-2  5  13.5 arm64-MB  14.6 bootstrap-MB  300 cold-ms  100 cold-extra-ms  20 init-ms  22 rie-init-ms  22 rss-MB  200 warm-ms
PASS
`
	results, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := summarize(&b, results); err != nil {
		t.Fatalf("summarize: %v", err)
	}
	for _, want := range []string{"cosign/signet 3.00x", "cosign/signet 6.00x", "13.5 MiB (linux/arm64", "init 20.0 ms", "first minus warm 100.0 ms", "peak RSS 22.0 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary does not contain %q:\n%s", want, b.String())
		}
	}

	delete(results, "BenchmarkColdStart")
	if err := summarize(&strings.Builder{}, results); err == nil || !strings.Contains(err.Error(), "BenchmarkColdStart") {
		t.Errorf("summarize without the cold start = %v, want an error naming BenchmarkColdStart", err)
	}
}
