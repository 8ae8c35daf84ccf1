package ecrevent_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/internal/ecrevent"
)

func TestSampleEvents(t *testing.T) {
	const digest = "sha256:9b2d3c1a0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233"
	tests := []struct {
		file       string
		wantAction string
		wantTag    string
		wantSkip   string // substring of the skip reason
		malformed  bool
	}{
		{file: "push.json", wantAction: "PUSH", wantTag: "1.4"},
		{file: "push-untagged.json", wantAction: "PUSH"},
		{file: "push-sig-tag.json", wantAction: "PUSH", wantTag: "sha256-9b2d3c1a0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233.sig"},
		{file: "delete.json", wantAction: "DELETE", wantTag: "1.4"},
		{file: "push-failure.json", wantSkip: `result "FAILURE"`},
		{file: "push-bad-digest.json", wantSkip: "is not sha256:<64 hex>"},
		{file: "scan.json", wantSkip: `detail-type "ECR Image Scan"`},
		{file: "malformed.json", malformed: true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "..", "events", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ecrevent.Parse(raw)
			var skip *ecrevent.Skip
			switch {
			case tc.malformed:
				if !errors.Is(err, ecrevent.ErrMalformed) {
					t.Fatalf("Parse(%s) error = %v, want ErrMalformed", tc.file, err)
				}
			case tc.wantSkip != "":
				if !errors.As(err, &skip) || !strings.Contains(skip.Reason, tc.wantSkip) {
					t.Fatalf("Parse(%s) error = %v, want a skip containing %q", tc.file, err, tc.wantSkip)
				}
			default:
				if err != nil {
					t.Fatalf("Parse(%s) error = %v", tc.file, err)
				}
				if got.Action != tc.wantAction || got.Tag != tc.wantTag || got.Digest != digest || got.Repository != "team/api" || got.EventID == "" || got.Time.IsZero() {
					t.Errorf("Parse(%s) = %+v, want action %s tag %q digest %s", tc.file, got, tc.wantAction, tc.wantTag, digest)
				}
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	base := `{"id":"e","time":"2026-12-01T10:00:00Z","source":"aws.ecr","detail-type":"ECR Image Action","detail":{"result":"SUCCESS","action-type":"PUSH","repository-name":%s,"image-digest":%s,"image-tag":%s}}`
	const d = `"sha256:9b2d3c1a0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233"`
	tests := []struct {
		name, repo, digest, tag, want string
	}{
		{"uppercase digest", `"team/api"`, `"sha256:9B2D3C1A0E7F6A5B4C3D2E1F00112233445566778899AABBCCDDEEFF00112233"`, `""`, "image-digest"},
		{"sha512 digest", `"team/api"`, `"sha512:abcd"`, `""`, "image-digest"},
		{"uppercase repository", `"Team/API"`, d, `""`, "repository-name"},
		{"path traversal repository", `"team/../api"`, d, `""`, "repository-name"},
		{"bad tag", `"team/api"`, d, `"-bad tag"`, "image-tag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(fmt.Sprintf(base, tc.repo, tc.digest, tc.tag))
			_, err := ecrevent.Parse(raw)
			var skip *ecrevent.Skip
			if !errors.As(err, &skip) || !strings.Contains(skip.Reason, tc.want) {
				t.Errorf("Parse(%s) = %v, want a skip naming %s", raw, err, tc.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, raw := range []string{``, `null`, `{}`, `[]`, `{"source":"aws.ecr","detail-type":"ECR Image Action","id":"x"}`, `{not json`} {
		if _, err := ecrevent.Parse([]byte(raw)); !errors.Is(err, ecrevent.ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", raw, err)
		}
	}
}

// FuzzParse checks that no input panics, and that whatever Parse accepts is
// an action signet knows on a valid digest.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`null`))
	f.Add([]byte(`{"detail":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ecrevent.Parse(raw)
		if err != nil {
			var skip *ecrevent.Skip
			if !errors.As(err, &skip) && !errors.Is(err, ecrevent.ErrMalformed) {
				t.Fatalf("Parse error %v is neither a skip nor malformed", err)
			}
			return
		}
		if got.Action != ecrevent.ActionPush && got.Action != ecrevent.ActionDel {
			t.Fatalf("accepted action %q", got.Action)
		}
		if len(got.Digest) != 71 || !strings.HasPrefix(got.Digest, "sha256:") {
			t.Fatalf("accepted digest %q", got.Digest)
		}
	})
}
