package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/signet-dev/signet/internal/imageref"
)

// Pinner answers mutating admission requests: each image given by tag alone
// whose digest, resolved at the registry, has a passing verdict is rewritten
// to IMAGE@DIGEST, so that what runs is what was checked, and the validating
// webhook (which denies tags by default) admits it. It never denies: an image
// it cannot pin is left as written, for the validating webhook to judge.
type Pinner struct {
	cfg     Config
	checker *Checker
	log     *slog.Logger
	metrics *Metrics
}

var _ Reviewing = (*Pinner)(nil)

// NewPinner returns a Pinner for the namespaces of cfg (its mode and failure
// policy do not apply). checker must have a resolver (WithResolver).
func NewPinner(cfg Config, checker *Checker, opts ...ReviewerOption) (*Pinner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("admission config: %w", err)
	}
	if checker.resolver == nil {
		return nil, errors.New("pinning tags needs a checker with a resolver")
	}
	// The options are the Reviewer's; take what they set.
	r := &Reviewer{log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(r)
	}
	return &Pinner{cfg: cfg, checker: checker, log: r.log, metrics: r.metrics}, nil
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Review returns an allowing response with a JSON patch pinning the images
// it could pin, if any.
func (p *Pinner) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	start := time.Now()
	resp := allow()
	resp.UID = req.UID
	if !p.cfg.checks(req) {
		return resp
	}
	obj, old, err := requestObjects(req)
	if err != nil {
		return resp // not ours to judge; the validating webhook says why
	}
	var todo []ContainerImage
	for _, c := range newImages(obj, old) {
		if ref, err := imageref.Parse(c.Image); err == nil && !ref.Pinned() {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return resp
	}
	images := make([]string, len(todo))
	for i, c := range todo {
		images[i] = c.Image
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	var ops []patchOp
	var logged []any
	for i, res := range p.checker.CheckAll(cctx, images) {
		c := todo[i]
		l := imageLog{Container: c.Container, List: c.List, Image: c.Image, Repository: res.Repository,
			Digest: res.Digest, Code: res.Code, Reason: res.Reason, Cached: res.Cached}
		logged = append(logged, l)
		if res.Allowed {
			ops = append(ops, patchOp{Op: "replace", Path: c.Path, Value: c.Image + "@" + res.Digest})
		}
	}
	result := "unpinned"
	if len(ops) > 0 {
		b, err := json.Marshal(ops)
		if err != nil {
			return resp
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = b, &pt
		result = "pinned"
	}
	p.metrics.decision(result, time.Since(start))
	p.log.LogAttrs(ctx, slog.LevelInfo, "admission pin",
		slog.String("uid", string(req.UID)), slog.String("kind", req.Kind.Kind),
		slog.String("namespace", req.Namespace), slog.String("name", objectName(req)),
		slog.String("user", req.UserInfo.Username), slog.String("decision", result),
		slog.Int("pinned", len(ops)), slog.Any("images", logged), slog.Duration("took", time.Since(start)))
	return resp
}
