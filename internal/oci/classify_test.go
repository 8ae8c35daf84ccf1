package oci

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestClassify(t *testing.T) {
	const (
		oci   = types.OCIManifestSchema1
		index = types.OCIImageIndex
		empty = `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2}`
	)
	tests := []struct {
		name   string
		mt     types.MediaType
		raw    string
		want   Kind
		reason string
	}{
		{"image", oci, `{` + empty + `,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}]}`, KindImage, ""},
		{"docker image", types.DockerManifestSchema2, `{"config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[]}`, KindImage, ""},
		{"cosign signature", oci, `{` + empty + `,"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"}]}`, KindArtifact, "simplesigning"},
		{"cosign attestation", oci, `{` + empty + `,"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json"}]}`, KindArtifact, "dsse"},
		{"sigstore bundle", oci, `{"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json",` + empty + `,"layers":[]}`, KindArtifact, "sigstore bundle"},
		{"attached artifact", oci, `{` + empty + `,"layers":[],"subject":{"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}}`, KindArtifact, "subject"},
		{"platform index", index, `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"os":"linux","architecture":"amd64"}}]}`, KindIndex, ""},
		{"referrers fallback index", index, `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}`, KindArtifact, "referrers"},
		{"not an image", types.MediaType("application/vnd.example+json"), `{}`, KindArtifact, "not an image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, err := Classify(tc.mt, []byte(tc.raw))
			if err != nil || got != tc.want || !strings.Contains(strings.ToLower(reason), strings.ToLower(tc.reason)) {
				t.Errorf("Classify(%s, %s) = %v, %q, %v; want %v with reason containing %q", tc.mt, tc.raw, got, reason, err, tc.want, tc.reason)
			}
		})
	}
	if _, _, err := Classify(oci, []byte(`{"layers":`)); err == nil {
		t.Errorf("Classify(truncated JSON) succeeded")
	}
}
