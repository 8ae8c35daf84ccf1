package main

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
)

// TestNoUnsuppressedFindings checks that cdk-nag's AwsSolutions pack (applied
// by newApp, as in a real synth) leaves no error or warning, and that CDK
// itself warned about nothing.
func TestNoUnsuppressedFindings(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    func(*testing.T) *synthesized
	}{{"full", full}, {"existing-key", existingKey}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(t)
			anyMessage := assertions.Match_StringLikeRegexp(jsii.String(".*"))
			for level, found := range map[string]*[]*cxapi.SynthesisMessage{
				"error":   s.annotations.FindError(jsii.String("*"), anyMessage),
				"warning": s.annotations.FindWarning(jsii.String("*"), anyMessage),
			} {
				var msgs []string
				for _, m := range *found {
					msgs = append(msgs, *m.Id+": "+render(m.Entry.Data))
				}
				if len(msgs) > 0 {
					t.Errorf("%d unsuppressed %s annotations:\n%s", len(msgs), level, strings.Join(msgs, "\n"))
				}
			}
		})
	}
}

// TestNagSuppressionsHaveReasons checks every suppression in the template:
// it has a written reason, and the set of suppressed rules is exactly the
// reviewed one, so a new suppression is a deliberate change to this test.
func TestNagSuppressionsHaveReasons(t *testing.T) {
	s := full(t)
	var got []string
	for id, r := range s.json["Resources"].(map[string]interface{}) {
		md, _ := r.(map[string]interface{})["Metadata"].(map[string]interface{})
		nag, _ := md["cdk_nag"].(map[string]interface{})
		rules, _ := nag["rules_to_suppress"].([]interface{})
		for _, rule := range rules {
			rule := rule.(map[string]interface{})
			reason, _ := rule["reason"].(string)
			if len(strings.Fields(reason)) < 8 {
				t.Errorf("%s: suppression of %v has no real reason: %q", id, rule["id"], reason)
			}
			path, _ := md["aws:cdk:path"].(string)
			got = append(got, path+" "+rule["id"].(string))
		}
	}
	sort.Strings(got)
	want := sorted(
		"Signet/EventDeadLetterQueue/Policy/Resource AwsSolutions-SQS3",
		"Signet/EventDeadLetterQueue/Resource AwsSolutions-SQS3",
		"Signet/FailedInvocationQueue/Policy/Resource AwsSolutions-SQS3",
		"Signet/FailedInvocationQueue/Resource AwsSolutions-SQS3",
		"Signet/SignerRole/DefaultPolicy/Resource AwsSolutions-IAM5",
		"Signet/SignerRole/DefaultPolicy/Resource AwsSolutions-IAM5",
		"Signet/SignerRole/Resource AwsSolutions-IAM5",
		"Signet/SignerRole/Resource AwsSolutions-IAM5",
	)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cdk-nag suppressions:\n got %q\nwant %q", got, want)
	}
}
