package main

import (
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// addNagSuppressions explains each cdk-nag AwsSolutions finding the stack
// keeps on purpose. Every suppression names the rule, what exactly it applies
// to, and why; TestNagSuppressionsHaveReasons checks that none is blank.
func (s *Signet) addNagSuppressions() {
	for _, q := range []struct {
		queue  interface{}
		reason string
	}{
		{s.EventDLQ, "This queue is itself the dead-letter queue of the EventBridge target: a queue behind it would only move undelivered events one step further. The EventDeadLetterAlarm fires on its first message."},
		{s.FailureQueue, "This queue is itself the on-failure destination of the signer's asynchronous invocations (a dead-letter queue). The FailedInvocationAlarm fires on its first message."},
	} {
		cdknag.NagSuppressions_AddResourceSuppressions(q.queue, &[]*cdknag.NagPackSuppression{{
			Id:     jsii.String("AwsSolutions-SQS3"),
			Reason: jsii.String(q.reason),
		}}, jsii.Bool(true))
	}

	cdknag.NagSuppressions_AddResourceSuppressions(s.SignerRole, &[]*cdknag.NagPackSuppression{
		{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String("ecr:GetAuthorizationToken has no resource type, so IAM accepts only Resource \"*\" for it; the token it returns grants nothing beyond the role's other ECR statements. It is the only statement with \"*\" (checked by TestIAMLeastPrivilege)."),
			AppliesTo: &[]interface{}{"Resource::*"},
		},
		{
			Id:     jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Repository ARNs ending in * come from the 'repositories' context value, where the operator lists the repository name prefixes (e.g. team/*) signet signs in; each stays within this account and region."),
			AppliesTo: &[]interface{}{cdknag.RegexAppliesTo{
				Regex: jsii.String(`/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):ecr:[^:]*:[^:]*:repository\/.*\*$/`),
			}},
		},
	}, jsii.Bool(true))
}
