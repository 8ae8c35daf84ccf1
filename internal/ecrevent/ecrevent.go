// Package ecrevent turns an EventBridge "ECR Image Action" event into the
// image signet must act on, or into a reason to leave the event alone.
//
// Parse decides from the event alone. Whether a pushed manifest is signet's
// own signature (loop safety) needs the manifest and is decided later.
package ecrevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// The event fields signet acts on.
const (
	Source     = "aws.ecr"
	DetailType = "ECR Image Action"
	ActionPush = "PUSH"
	ActionDel  = "DELETE"
	Success    = "SUCCESS"
)

// ErrMalformed wraps every error about input that is not an event at all.
// Such input is handed back to the platform (so it lands in the dead-letter
// queue intact), never silently dropped.
var ErrMalformed = errors.New("malformed event")

// Skip is returned for a well-formed event that signet does not act on.
// Reason is one short phrase, fit for a structured log line.
type Skip struct{ Reason string }

func (s *Skip) Error() string { return "skipped: " + s.Reason }

// Target is the image an event asks signet to act on.
type Target struct {
	EventID    string
	Time       time.Time
	Account    string
	Region     string
	Action     string // ActionPush or ActionDel
	Repository string // the ECR repository name, e.g. team/api
	Digest     string // sha256:<64 hex>
	Tag        string // empty for untagged pushes, such as platform manifests of an index
}

var (
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	// repoRE is ECR's repository name rule.
	repoRE = regexp.MustCompile(`^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	// tagRE is the OCI distribution tag rule.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// Parse reads one EventBridge event. It returns the target, a *Skip with the
// reason to leave it alone, or an error wrapping ErrMalformed.
func Parse(raw []byte) (Target, error) {
	var ev events.ECRImageActionEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Target{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case ev.Source == "" || ev.DetailType == "" || ev.ID == "":
		return Target{}, fmt.Errorf("%w: no source, detail-type or id: not an EventBridge event", ErrMalformed)
	case ev.Time.IsZero():
		return Target{}, fmt.Errorf("%w: event %s has no time", ErrMalformed, ev.ID)
	}
	d := ev.Detail
	switch {
	case ev.Source != Source:
		return Target{}, &Skip{Reason: fmt.Sprintf("source %q is not %s", ev.Source, Source)}
	case ev.DetailType != DetailType:
		return Target{}, &Skip{Reason: fmt.Sprintf("detail-type %q is not %q", ev.DetailType, DetailType)}
	case d.Result != Success:
		return Target{}, &Skip{Reason: fmt.Sprintf("result %q is not %s", d.Result, Success)}
	case d.ActionType != ActionPush && d.ActionType != ActionDel:
		return Target{}, &Skip{Reason: fmt.Sprintf("action-type %q is neither %s nor %s", d.ActionType, ActionPush, ActionDel)}
	case !digestRE.MatchString(d.ImageDigest):
		return Target{}, &Skip{Reason: fmt.Sprintf("image-digest %q is not sha256:<64 hex>", truncate(d.ImageDigest))}
	case len(d.RepositoryName) < 2 || len(d.RepositoryName) > 256 || !repoRE.MatchString(d.RepositoryName):
		return Target{}, &Skip{Reason: fmt.Sprintf("repository-name %q is not a valid ECR repository name", truncate(d.RepositoryName))}
	case d.ImageTag != "" && !tagRE.MatchString(d.ImageTag):
		return Target{}, &Skip{Reason: fmt.Sprintf("image-tag %q is not a valid tag", truncate(d.ImageTag))}
	}
	return Target{
		EventID:    ev.ID,
		Time:       ev.Time,
		Account:    ev.Account,
		Region:     ev.Region,
		Action:     d.ActionType,
		Repository: d.RepositoryName,
		Digest:     d.ImageDigest,
		Tag:        d.ImageTag,
	}, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
