package imageref_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/testenv"
)

const dig = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, repo, tag, digest, str string
	}{
		{"nginx", "index.docker.io/library/nginx", "latest", "", "index.docker.io/library/nginx:latest"},
		{"nginx:1.27", "index.docker.io/library/nginx", "1.27", "", "index.docker.io/library/nginx:1.27"},
		{"docker.io/nginx", "index.docker.io/library/nginx", "latest", "", "index.docker.io/library/nginx:latest"},
		{"docker.io/library/nginx:1.27", "index.docker.io/library/nginx", "1.27", "", "index.docker.io/library/nginx:1.27"},
		{"index.docker.io/library/nginx@" + dig, "index.docker.io/library/nginx", "", dig, "index.docker.io/library/nginx@" + dig},
		{"bitnami/redis:7", "index.docker.io/bitnami/redis", "7", "", "index.docker.io/bitnami/redis:7"},
		{"nginx:1.27@" + dig, "index.docker.io/library/nginx", "1.27", dig, "index.docker.io/library/nginx:1.27@" + dig},
		{"127.0.0.1:5000/team/api", "127.0.0.1:5000/team/api", "latest", "", "127.0.0.1:5000/team/api:latest"},
		{"127.0.0.1:5000/team/api@" + dig, "127.0.0.1:5000/team/api", "", dig, "127.0.0.1:5000/team/api@" + dig},
		{"localhost:5000/api:v1@" + dig, "localhost:5000/api", "v1", dig, "localhost:5000/api:v1@" + dig},
		{"localhost/api", "localhost/api", "latest", "", "localhost/api:latest"},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:v1.2.3",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api", "v1.2.3", "",
			"123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:v1.2.3"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := imageref.Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.in, err)
			}
			if r.Repository != tc.repo || r.Tag != tc.tag || r.Digest != tc.digest {
				t.Errorf("Parse(%q) = repo %q tag %q digest %q, want %q %q %q", tc.in, r.Repository, r.Tag, r.Digest, tc.repo, tc.tag, tc.digest)
			}
			if got := r.String(); got != tc.str {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.str)
			}
			// The repository is the one go-containerregistry prints, which is
			// the key the signer writes verdicts under.
			n, err := name.ParseReference(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if n.Context().Name() != r.Repository {
				t.Errorf("Parse(%q).Repository = %q, name.ParseReference says %q", tc.in, r.Repository, n.Context().Name())
			}
			if r.Pinned() != (tc.digest != "") {
				t.Errorf("Parse(%q).Pinned() = %v", tc.in, r.Pinned())
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"NGINX", "repository"},
		{"Team/Api:v1", "repository"},
		{"nginx@sha256:abc", "sha256"},
		{"nginx@" + dig + "@" + dig, "'@'"},
		{"nginx:", "tag"},
		{" nginx", "space"},
		{"nginx:bad tag", "tag"},
		{"127.0.0.1:5000/", "repository"},
		{"nginx@md5:" + strings.Repeat("0", 32), "md5"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := imageref.Parse(tc.in)
			if !errors.Is(err, imageref.ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, want ErrInvalid", tc.in, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %q, want it to mention %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestRemoteResolver(t *testing.T) {
	ctx := context.Background()
	reg := testenv.Registry(t)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(reg + "/team/api:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	r := imageref.NewRemoteResolver()
	for _, tc := range []struct {
		in, want, err string
	}{
		{reg + "/team/api:v1", want.String(), ""},
		{reg + "/team/api@" + dig, dig, ""}, // pinned: no registry round-trip
		{reg + "/team/api:v2", "", "MANIFEST_UNKNOWN"},
		{reg + "/team/other:v1", "", "resolving"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ref, err := imageref.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Resolve(ctx, ref)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Resolve(%q) = %q, %v; want error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Resolve(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
