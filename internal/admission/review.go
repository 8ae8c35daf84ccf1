package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode says what the webhook does with an object it would deny.
type Mode string

// The modes.
const (
	// Enforce denies the object.
	Enforce Mode = "enforce"
	// Warn admits it with an admission warning per failing image, which
	// kubectl prints.
	Warn Mode = "warn"
	// Audit admits it and only writes the decision to the log.
	Audit Mode = "audit"
)

// FailurePolicy says what happens when the verdict store or the registry
// cannot be asked.
type FailurePolicy string

// The failure policies.
const (
	// FailClosed denies: no answer is no admission.
	FailClosed FailurePolicy = "closed"
	// FailOpen admits with a warning.
	FailOpen FailurePolicy = "open"
)

// DefaultBreakglass is the annotation that lets an object through; its value
// is the reason, which is logged.
const DefaultBreakglass = "signet.dev/breakglass"

// Config is the webhook's policy.
type Config struct {
	// Mode is Enforce, Warn or Audit.
	Mode Mode
	// FailurePolicy is FailClosed or FailOpen.
	FailurePolicy FailurePolicy
	// IncludeNamespaces, when not empty, limits checks to these namespaces;
	// ExcludeNamespaces are never checked. Both take path.Match patterns.
	IncludeNamespaces []string
	ExcludeNamespaces []string
	// Breakglass is the annotation key that lets an object through
	// (DefaultBreakglass if empty); "-" turns breakglass off.
	Breakglass string
	// BreakglassGroups are the users and groups (as the API server
	// authenticated them) whose requests may use the breakglass annotation.
	// Empty, the default, turns breakglass off: an annotation is something
	// anyone who may edit the object can set, so it is honoured only for
	// these requesters.
	BreakglassGroups []string
	// Timeout bounds the look-ups of one request, so the webhook answers
	// (and its failure policy applies) before the API server gives up.
	Timeout time.Duration
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	switch c.Mode {
	case "":
		c.Mode = Enforce
	case Enforce, Warn, Audit:
	default:
		return fmt.Errorf("mode %q: want enforce, warn or audit", c.Mode)
	}
	switch c.FailurePolicy {
	case "":
		c.FailurePolicy = FailClosed
	case FailClosed, FailOpen:
	default:
		return fmt.Errorf("failure policy %q: want closed or open", c.FailurePolicy)
	}
	for _, p := range append(append([]string(nil), c.IncludeNamespaces...), c.ExcludeNamespaces...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("namespace pattern %q: %w", p, err)
		}
	}
	if c.Breakglass == "" {
		c.Breakglass = DefaultBreakglass
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	return nil
}

// Reviewer decides admission requests.
type Reviewer struct {
	cfg     Config
	checker *Checker
	log     *slog.Logger
	metrics *Metrics
}

// ReviewerOption configures a Reviewer.
type ReviewerOption func(*Reviewer)

// WithLogger sets where decisions are logged (default: nowhere). Every
// request that is checked gets one line; breakglass and audit lines are
// written at warn level.
func WithLogger(l *slog.Logger) ReviewerOption { return func(r *Reviewer) { r.log = l } }

// WithReviewMetrics counts decisions and their latency.
func WithReviewMetrics(m *Metrics) ReviewerOption { return func(r *Reviewer) { r.metrics = m } }

// NewReviewer returns a Reviewer applying cfg with checker's answers.
func NewReviewer(cfg Config, checker *Checker, opts ...ReviewerOption) (*Reviewer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("admission config: %w", err)
	}
	r := &Reviewer{cfg: cfg, checker: checker, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Review decides req. The response's UID is req's.
func (r *Reviewer) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	start := time.Now()
	resp, result, attrs := r.review(ctx, req)
	resp.UID = req.UID
	took := time.Since(start)
	r.metrics.decision(result, took)
	if result == "skipped" {
		return resp
	}
	level := slog.LevelInfo
	switch result {
	case "denied", "warned", "audited", "breakglass", "error":
		level = slog.LevelWarn
	}
	attrs = append([]slog.Attr{
		slog.String("uid", string(req.UID)),
		slog.String("operation", string(req.Operation)),
		slog.String("kind", req.Kind.Kind),
		slog.String("namespace", req.Namespace),
		slog.String("name", objectName(req)),
		slog.String("user", req.UserInfo.Username),
		slog.String("decision", result),
		slog.String("mode", string(r.cfg.Mode)),
		slog.Bool("dryRun", req.DryRun != nil && *req.DryRun),
		slog.Duration("took", took),
	}, attrs...)
	r.log.LogAttrs(ctx, level, "admission decision", attrs...)
	return resp
}

// review returns the response, the decision for metrics and logs, and the
// log attributes that describe it.
func (r *Reviewer) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string, []slog.Attr) {
	if !r.cfg.checks(req) {
		return allow(), "skipped", nil
	}
	obj, old, err := requestObjects(req)
	if errors.Is(err, ErrUnsupportedKind) {
		return allow(), "skipped", nil
	}
	if err != nil {
		msg := fmt.Sprintf("signet could not read the %s: %v", req.Kind.Kind, err)
		return deny(http.StatusBadRequest, msg), "error", []slog.Attr{slog.String("error", err.Error())}
	}

	todo := newImages(obj, old)
	images := make([]string, len(todo))
	for i, c := range todo {
		images[i] = c.Image
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	results := r.checker.CheckAll(cctx, images)

	var denied, failed []string
	logged := make([]any, len(todo))
	for i, res := range results {
		c := todo[i]
		logged[i] = imageLog{Container: c.Container, List: c.List, Image: c.Image,
			Repository: res.Repository, Digest: res.Digest, Code: res.Code, Reason: res.Reason, Cached: res.Cached}
		line := fmt.Sprintf("container %q image %q: %s", c.Container, c.Image, res.Reason)
		switch {
		case res.Allowed:
		case res.Transient():
			failed = append(failed, line)
		default:
			denied = append(denied, line)
		}
	}
	attrs := []slog.Attr{slog.Any("images", logged)}

	if reason, ok := r.breakglass(req, obj); ok {
		resp := allow()
		resp.Warnings = []string{fmt.Sprintf("signet: breakglass %q: admitted without verdict checks; this is logged", reason)}
		attrs = append(attrs, slog.String("breakglass", reason),
			slog.Int("wouldDeny", len(denied)), slog.Int("failed", len(failed)))
		return resp, "breakglass", attrs
	}

	// A failure to ask is a denial when failing closed, a warning when open.
	var warnings []string
	if len(failed) > 0 {
		if r.cfg.FailurePolicy == FailClosed {
			for _, f := range failed {
				denied = append(denied, f+" (denied: signet fails closed when it cannot check)")
			}
		} else {
			for _, f := range failed {
				warnings = append(warnings, "signet: admitted without a check (failure policy open): "+f)
			}
		}
	}
	if len(denied) == 0 {
		resp := allow()
		resp.Warnings = warnings
		result := "allowed"
		if len(failed) > 0 {
			result = "error"
		}
		return resp, result, attrs
	}
	msg := fmt.Sprintf("signet: %d image(s) of %s %s/%s have no passing verdict: %s",
		len(denied), req.Kind.Kind, req.Namespace, objectName(req), strings.Join(denied, "; "))
	attrs = append(attrs, slog.String("message", msg))
	switch r.cfg.Mode {
	case Warn:
		resp := allow()
		for _, d := range denied {
			warnings = append(warnings, "signet (warn mode, would deny): "+d)
		}
		resp.Warnings = warnings
		return resp, "warned", attrs
	case Audit:
		resp := allow()
		resp.Warnings = nil
		return resp, "audited", attrs
	}
	resp := deny(http.StatusForbidden, msg)
	resp.Warnings = warnings
	return resp, "denied", attrs
}

type imageLog struct {
	Container  string `json:"container"`
	List       string `json:"list"`
	Image      string `json:"image"`
	Repository string `json:"repository,omitempty"`
	Digest     string `json:"digest,omitempty"`
	Code       Code   `json:"outcome"`
	Reason     string `json:"reason"`
	Cached     bool   `json:"cached"`
}

// newImages returns the images of obj that old does not have. On an update
// only those are checked, so metadata changes (finalizers, labels) of
// objects whose verdict has since changed still go through.
func newImages(obj, old Object) []ContainerImage {
	seen := map[string]bool{}
	for _, c := range old.Images {
		seen[c.Image] = true
	}
	var todo []ContainerImage
	for _, c := range obj.Images {
		if !seen[c.Image] {
			todo = append(todo, c)
		}
	}
	return todo
}

// checks reports whether req is checked at all: a create or update of an
// object (or of a pod's ephemeral containers) in a namespace that is checked.
func (c *Config) checks(req *admissionv1.AdmissionRequest) bool {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return false
	}
	if req.SubResource != "" && req.SubResource != "ephemeralcontainers" {
		return false
	}
	return c.namespaceChecked(req.Namespace)
}

func (r *Reviewer) breakglass(req *admissionv1.AdmissionRequest, obj Object) (string, bool) {
	if r.cfg.Breakglass == "-" || !slices.ContainsFunc(r.cfg.BreakglassGroups, func(g string) bool {
		return g == req.UserInfo.Username || slices.Contains(req.UserInfo.Groups, g)
	}) {
		return "", false
	}
	reason, ok := obj.Annotations[r.cfg.Breakglass]
	reason = strings.TrimSpace(reason)
	return reason, ok && reason != ""
}

func (c *Config) namespaceChecked(ns string) bool {
	for _, p := range c.ExcludeNamespaces {
		if ok, _ := path.Match(p, ns); ok {
			return false
		}
	}
	if len(c.IncludeNamespaces) == 0 {
		return true
	}
	for _, p := range c.IncludeNamespaces {
		if ok, _ := path.Match(p, ns); ok {
			return true
		}
	}
	return false
}

func objectName(req *admissionv1.AdmissionRequest) string {
	if req.Name != "" {
		return req.Name
	}
	// Pods created by controllers have only generateName until the API server
	// names them, after admission.
	var m struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &m); err == nil && m.Metadata.GenerateName != "" {
		return m.Metadata.GenerateName + "*"
	}
	return ""
}

func allow() *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	reason := metav1.StatusReasonForbidden
	if code == http.StatusBadRequest {
		reason = metav1.StatusReasonBadRequest
	} else if code == http.StatusRequestEntityTooLarge {
		reason = metav1.StatusReasonRequestEntityTooLarge
	} else if code >= 500 {
		reason = metav1.StatusReasonInternalError
	}
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result:  &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg},
	}
}
