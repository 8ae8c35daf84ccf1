package admission

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Exit statuses of `signet verdict`.
const (
	ExitAllowed = 0 // every image has a passing verdict
	ExitDenied  = 1 // some image has none, and every answer was found
	ExitError   = 2 // some image could not be checked, or is not an image reference
)

// ExitCode returns the exit status for results: ExitError if any image could
// not be checked (store or registry unreachable, invalid reference, unknown
// tag), else ExitDenied if any is denied, else ExitAllowed.
func ExitCode(results []Result) int {
	code := ExitAllowed
	for _, r := range results {
		switch {
		case r.Transient() || r.Code == CodeInvalid || r.Code == CodeUnknownTag:
			return ExitError
		case !r.Allowed:
			code = ExitDenied
		}
	}
	return code
}

// decision is the one-word answer for a result.
func decision(r Result) string {
	switch {
	case r.Allowed:
		return "ALLOW"
	case r.Transient() || r.Code == CodeInvalid || r.Code == CodeUnknownTag:
		return "ERROR"
	default:
		return "DENY"
	}
}

// WriteTable prints results as an aligned table, then, for images given by
// tag, the digest-pinned reference to deploy instead.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDECISION\tOUTCOME\tREPOSITORY\tDIGEST\tREASON")
	for _, r := range results {
		outcome, reason := "-", r.Reason
		if r.Verdict != nil { // the outcome has a column of its own
			outcome, reason = string(r.Verdict.Outcome), r.Verdict.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Image, decision(r), outcome, dash(r.Repository), dash(r.Digest), dash(reason))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	var pins []string
	for _, r := range results {
		if r.Resolved {
			pins = append(pins, fmt.Sprintf("%s is a tag; deploy it pinned: %s\n", r.Image, r.Pinned()))
		}
	}
	if len(pins) > 0 {
		if _, err := fmt.Fprint(w, "\n"+strings.Join(pins, "")); err != nil {
			return fmt.Errorf("writing table: %w", err)
		}
	}
	return nil
}

// Report is the JSON form of `signet verdict -o json`.
type Report struct {
	// Allowed is true when every image may run.
	Allowed bool `json:"allowed"`
	// Images holds one entry per image, in the order given.
	Images []ReportImage `json:"images"`
}

// ReportImage is one image of a Report.
type ReportImage struct {
	Result
	// Decision is ALLOW, DENY or ERROR.
	Decision string `json:"decision"`
	// Pinned is the reference to deploy: repository[:tag]@digest.
	Pinned string `json:"pinned,omitempty"`
	// Error is the underlying error of a failure.
	Error string `json:"error,omitempty"`
}

// WriteJSON prints results as an indented Report.
func WriteJSON(w io.Writer, results []Result) error {
	rep := Report{Allowed: ExitCode(results) == ExitAllowed, Images: make([]ReportImage, len(results))}
	for i, r := range results {
		ri := ReportImage{Result: r, Decision: decision(r), Pinned: r.Pinned()}
		if r.Err != nil {
			ri.Error = r.Err.Error()
		}
		rep.Images[i] = ri
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
