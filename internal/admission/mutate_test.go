package admission_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/admission"
	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

type patchOp struct {
	Op, Path, Value string
}

// TestPinner sends reviews to the mutating endpoint: tags whose digest has a
// passing verdict are pinned with a JSON patch at the right path for each
// kind; unsigned tags, pinned images and unchecked namespaces are left alone,
// and nothing is ever denied.
func TestPinner(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	record(t, d.Store, seedVerdicts()...)
	reg := testenv.Registry(t)
	push := func(repo string) string {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag(reg + "/" + repo + ":v1")
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		dg, _ := img.Digest()
		return dg.String()
	}
	signed := push("team/web")
	push("team/unsigned")
	record(t, d.Store, verdict.Verdict{Repository: reg + "/team/web", Digest: signed, Outcome: verdict.Signed, Reason: "signed"})

	checker := admission.NewChecker(d.Store, admission.WithResolver(imageref.NewRemoteResolver()))
	if _, err := admission.NewPinner(admission.Config{}, admission.NewChecker(d.Store)); err == nil {
		t.Error("NewPinner without a resolver: no error")
	}
	for _, tc := range []struct {
		name, fixture string
		cfg           admission.Config
		want          []patchOp
	}{
		{"pod tag", "pod-registry-tag.json", admission.Config{},
			[]patchOp{{"replace", "/spec/containers/0/image", reg + "/team/web:v1@" + signed}}},
		{"cronjob: only the signed tag", "cronjob-registry-tags.json", admission.Config{},
			[]patchOp{{"replace", "/spec/jobTemplate/spec/template/spec/containers/0/image", reg + "/team/web:v1@" + signed}}},
		{"already pinned", "pod-digest.json", admission.Config{}, nil},
		{"excluded namespace", "pod-registry-tag.json", admission.Config{ExcludeNamespaces: []string{"team-*"}}, nil},
		{"invalid reference", "pod-malformed.json", admission.Config{}, nil},
		{"delete", "pod-delete.json", admission.Config{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := admission.NewPinner(tc.cfg, checker)
			if err != nil {
				t.Fatal(err)
			}
			got := post(t, serve(t, p), fixture(t, tc.fixture, reg))
			if !got.Allowed {
				t.Fatalf("%s: denied %+v; the pinner never denies", tc.fixture, got.Result)
			}
			if tc.want == nil {
				if got.Patch != nil {
					t.Fatalf("%s: patch %s, want none", tc.fixture, got.Patch)
				}
				return
			}
			if got.PatchType == nil || *got.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("%s: patch type %v, want JSONPatch", tc.fixture, got.PatchType)
			}
			var ops []patchOp
			if err := json.Unmarshal(got.Patch, &ops); err != nil {
				t.Fatal(err)
			}
			if len(ops) != len(tc.want) {
				t.Fatalf("%s: patch %s, want %v", tc.fixture, got.Patch, tc.want)
			}
			for i := range ops {
				if ops[i] != tc.want[i] {
					t.Errorf("%s: op %d = %+v, want %+v", tc.fixture, i, ops[i], tc.want[i])
				}
			}
		})
	}
}
