package ecrauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-dev/signet/internal/ecrauth"
	"github.com/signet-dev/signet/internal/testenv"
)

func TestECRRegion(t *testing.T) {
	for _, tc := range []struct {
		host, region string
		ok           bool
	}{
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "us-east-1", true},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1", true},
		{"public.ecr.aws", "", false},
		{"12345.dkr.ecr.us-east-1.amazonaws.com", "", false},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", "", false},
		{"index.docker.io", "", false},
		{"127.0.0.1:5000", "", false},
	} {
		region, ok := ecrauth.ECRRegion(tc.host)
		if region != tc.region || ok != tc.ok {
			t.Errorf("ECRRegion(%q) = %q, %v, want %q, %v", tc.host, region, ok, tc.region, tc.ok)
		}
	}
}

// ecrAPI answers GetAuthorizationToken the way the ECR API does (JSON 1.1),
// and records the region of each signed request.
type ecrAPI struct {
	mu      sync.Mutex
	regions []string
}

func (e *ecrAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		http.Error(w, "unexpected target "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
		return
	}
	// Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/ecr/aws4_request, ...
	cred := r.Header.Get("Authorization")
	parts := strings.Split(cred, "/")
	e.mu.Lock()
	if len(parts) > 2 {
		e.regions = append(e.regions, parts[2])
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []any{map[string]any{
		"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:token-for-" + parts[2])),
		"expiresAt":          float64(time.Now().Add(12 * time.Hour).Unix()),
		"proxyEndpoint":      "https://123456789012.dkr.ecr." + parts[2] + ".amazonaws.com",
	}}})
}

func TestECRKeychain(t *testing.T) {
	api := &ecrAPI{}
	s := httptest.NewServer(api)
	defer s.Close()
	cfg := testenv.Static()
	k := ecrauth.NewKeychain(cfg, func(o *ecr.Options) { o.BaseEndpoint = aws.String(s.URL) })
	kc := authn.NewMultiKeychain(authn.DefaultKeychain, k)

	for _, tc := range []struct {
		ref, user, pass string
	}{
		{"123456789012.dkr.ecr.us-west-2.amazonaws.com/team/api:v1", "AWS", "token-for-us-west-2"},
		{"123456789012.dkr.ecr.us-west-2.amazonaws.com/team/web:v2", "AWS", "token-for-us-west-2"}, // cached
		{"210987654321.dkr.ecr.eu-west-1.amazonaws.com/base/debian:12", "AWS", "token-for-eu-west-1"},
		{"127.0.0.1:5000/team/api:v1", "", ""}, // anonymous
	} {
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := authn.Resolve(context.Background(), kc, ref.Context())
		if err != nil {
			t.Fatalf("Resolve(%s): %v", tc.ref, err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tc.user || cfg.Password != tc.pass {
			t.Errorf("Resolve(%s) = %s:%s, want %s:%s", tc.ref, cfg.Username, cfg.Password, tc.user, tc.pass)
		}
	}
	if got := strings.Join(api.regions, ","); got != "us-west-2,eu-west-1" {
		t.Errorf("GetAuthorizationToken calls by region = %s, want us-west-2,eu-west-1 (one per region)", got)
	}
}
