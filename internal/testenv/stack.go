package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DockerRegistry starts Debian's docker-registry (CNCF distribution 2.8) on
// 127.0.0.1 with filesystem storage and deletes enabled; it returns host:port.
// This registry has no referrers API, like many in production.
func DockerRegistry(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry is not installed: run `make tools` (apt-get install docker-registry)")
	}
	dir := t.TempDir()
	port := FreePort(t)
	cfg := filepath.Join(dir, "config.yml")
	y := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	Start(t, nil, bin, "serve", cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	WaitTCP(t, addr, 20*time.Second)
	return addr
}

// BuildSigner builds the signer Lambda's bootstrap for this machine, as the
// Lambda runs it (-tags lambda.norpc), and returns its path.
func BuildSigner(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "lambda.norpc", "-o", out, "./functions/signer")
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the signer: %v\n%s", err, b)
	}
	return out
}

// Lambda starts bootstrap under the Lambda runtime interface emulator with
// env, and returns its invoke URL.
func Lambda(t testing.TB, bootstrap string, env []string) string {
	t.Helper()
	rie := Tool(t, "aws-lambda-rie", RIEVersion)
	port, rapi := FreePort(t), FreePort(t)
	Start(t, append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT=60"), rie,
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", rapi),
		bootstrap)
	WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second)
	return fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
}

// Push writes img to host/repo:tag and returns its digest reference.
func Push(t testing.TB, host, repo, tag string, img v1.Image) name.Digest {
	t.Helper()
	ref, err := name.NewTag(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(h.String())
}

// PushRandom pushes a random image of layers layers of size bytes each.
func PushRandom(t testing.TB, host, repo, tag string, size int64, layers int64) name.Digest {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	return Push(t, host, repo, tag, img)
}

// Event returns the sample events/<sample> with its id, time, repository,
// digest and tag replaced (an empty tag removes image-tag), as ECR would
// send it for that push.
func Event(t testing.TB, sample, id, repo, digest, tag string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(Root(), "events", sample))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("events/%s: %v", sample, err)
	}
	d, ok := ev["detail"].(map[string]any)
	if !ok {
		t.Fatalf("events/%s has no detail", sample)
	}
	ev["id"], ev["time"] = id, time.Now().UTC().Format(time.RFC3339)
	d["repository-name"], d["image-digest"] = repo, digest
	if tag == "" {
		delete(d, "image-tag")
	} else {
		d["image-tag"] = tag
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// IndexEntry is one manifest of an index pushed by PushIndex.
type IndexEntry struct {
	Image    v1.Image
	Platform v1.Platform
}

// PushIndex writes an image index of entries to host/repo:tag and returns
// its digest reference.
func PushIndex(t testing.TB, host, repo, tag string, entries ...IndexEntry) name.Digest {
	t.Helper()
	adds := make([]mutate.IndexAddendum, len(entries))
	for i, e := range entries {
		adds[i] = mutate.IndexAddendum{Add: e.Image, Descriptor: v1.Descriptor{Platform: &e.Platform}}
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	ref, err := name.NewTag(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(h.String())
}
