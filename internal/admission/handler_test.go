package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/verdict"
)

// mapReader is an in-memory verdict.Reader for tests whose subject is the
// decoding, not the store (the fuzz test runs thousands of inputs a second).
type mapReader struct {
	mu sync.Mutex
	m  map[string]verdict.Verdict
}

func (r *mapReader) Get(_ context.Context, repository, digest string) (verdict.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.m[repository+"@"+digest]; ok {
		return v, nil
	}
	return verdict.Verdict{}, verdict.ErrNotFound
}

func seededMap() *mapReader {
	r := &mapReader{m: map[string]verdict.Verdict{}}
	for _, v := range seedVerdicts() {
		r.m[v.Repository+"@"+v.Digest] = v
	}
	return r
}

type panicky struct{}

func (panicky) Review(context.Context, *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	panic("boom")
}

// TestHandlerRequests covers what the handler does with requests that are
// not a well-formed AdmissionReview, and with a reviewer that panics.
func TestHandlerRequests(t *testing.T) {
	rv, err := admission.NewReviewer(admission.Config{}, admission.NewChecker(seededMap()))
	if err != nil {
		t.Fatal(err)
	}
	good := fixture(t, "pod-digest.json", "")
	var goodReview admissionv1.AdmissionReview
	if err := json.Unmarshal(good, &goodReview); err != nil {
		t.Fatal(err)
	}
	uid := string(goodReview.Request.UID)
	big := append(append([]byte(nil), good[:len(good)-3]...), []byte(`,"pad":"`+strings.Repeat("x", 2048)+`"}}`)...)

	for _, tc := range []struct {
		name        string
		handler     http.Handler
		method, ct  string
		body        []byte
		status      int
		allowed     bool
		code        int32
		uid, msg    string
		noReviewOut bool
	}{
		{name: "well formed", body: good, status: 200, allowed: true, uid: uid},
		{name: "GET", method: http.MethodGet, status: 405, noReviewOut: true},
		{name: "wrong content type", ct: "text/plain", body: good, status: 415, noReviewOut: true},
		{name: "content type with charset", ct: "application/json; charset=utf-8", body: good, status: 200, allowed: true, uid: uid},
		{name: "not JSON", body: []byte("{{"), status: 200, code: 400, msg: "decoding admission review"},
		{name: "v1beta1", body: bytes.Replace(good, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1),
			status: 200, code: 400, uid: uid, msg: `apiVersion "admission.k8s.io/v1beta1"`},
		{name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), status: 200, code: 400, msg: "no request"},
		{name: "no uid", body: bytes.Replace(good, []byte(`"uid": "`+uid+`"`), []byte(`"uid": ""`), 1), status: 200, code: 400, msg: "no uid"},
		{name: "object not a pod", body: bytes.Replace(good, []byte(`"containers": [`), []byte(`"containers": 7, "x": [`), 1),
			status: 200, code: 400, uid: uid, msg: "could not read the Pod"},
		{name: "too large", handler: admission.NewHandler(rv, admission.WithMaxBody(1024)), body: big, status: 200, code: 413, msg: "larger than 1024 bytes"},
		{name: "panic", handler: admission.NewHandler(panicky{}), body: good, status: 200, code: 500, uid: uid, msg: "internal error while reviewing: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.handler
			if h == nil {
				h = admission.NewHandler(rv)
			}
			s := httptest.NewServer(h)
			defer s.Close()
			method, ct := tc.method, tc.ct
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" {
				ct = "application/json"
			}
			req, _ := http.NewRequest(method, s.URL, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
			if tc.noReviewOut {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
				t.Fatalf("%s: response %+v, %v: want an AdmissionReview", tc.name, out, err)
			}
			r := out.Response
			if string(r.UID) != tc.uid {
				t.Errorf("%s: uid %q, want %q", tc.name, r.UID, tc.uid)
			}
			if r.Allowed != tc.allowed {
				t.Errorf("%s: allowed %v, want %v", tc.name, r.Allowed, tc.allowed)
			}
			if tc.code != 0 && (r.Result == nil || r.Result.Code != tc.code || !strings.Contains(r.Result.Message, tc.msg)) {
				t.Errorf("%s: result %+v, want code %d and a message with %q", tc.name, r.Result, tc.code, tc.msg)
			}
		})
	}
}

// FuzzReview feeds arbitrary bytes through decoding and the reviewer: no
// panic, and a decoded request always gets a response with its UID. The
// fixtures are the seed corpus, so `go test` runs them as a short check.
func FuzzReview(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"image":"A@B"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"batch","version":"v1","kind":"CronJob"},"operation":"UPDATE","object":null,"oldObject":{}}}`))
	rv, err := admission.NewReviewer(admission.Config{}, admission.NewChecker(seededMap()))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		review, err := admission.DecodeReview(body)
		if err != nil {
			return
		}
		resp := rv.Review(context.Background(), review.Request)
		if resp == nil || resp.UID != review.Request.UID {
			t.Fatalf("Review(%q) = %+v, want a response with uid %q", body, resp, review.Request.UID)
		}
		if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatalf("Review(%q) denied without a message", body)
		}
	})
}
