package main

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// policyDoc is one policy document found in the template, with where it was.
type policyDoc struct {
	resource, typ, property string
	statements              []map[string]interface{}
}

// policyProperties are the properties that hold IAM policy documents, in
// any resource type.
var policyProperties = map[string]bool{"PolicyDocument": true, "KeyPolicy": true, "AssumeRolePolicyDocument": true}

// policyDocs walks every resource's properties, to any depth (so role
// inline policies are found too), and returns every policy document.
func policyDocs(s *synthesized) []policyDoc {
	var docs []policyDoc
	for id, r := range s.json["Resources"].(map[string]interface{}) {
		r := r.(map[string]interface{})
		var walk func(v interface{})
		walk = func(v interface{}) {
			switch v := v.(type) {
			case map[string]interface{}:
				for k, e := range v {
					if policyProperties[k] {
						docs = append(docs, policyDoc{resource: id, typ: r["Type"].(string), property: k, statements: statements(e)})
						continue
					}
					walk(e)
				}
			case []interface{}:
				for _, e := range v {
					walk(e)
				}
			}
		}
		walk(r["Properties"])
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].resource+docs[i].property < docs[j].resource+docs[j].property })
	return docs
}

func statements(doc interface{}) []map[string]interface{} {
	var out []map[string]interface{}
	switch st := doc.(map[string]interface{})["Statement"].(type) {
	case []interface{}:
		for _, e := range st {
			out = append(out, e.(map[string]interface{}))
		}
	case map[string]interface{}:
		out = append(out, st)
	}
	return out
}

// TestIAMLeastPrivilege checks every Allow statement of every policy in the
// template (identity policies, role inline and trust policies, key, queue
// and topic policies): no NotAction or NotResource, no wildcard in an
// action, and Resource "*" only for ecr:GetAuthorizationToken or in a key
// policy, where "*" means the key itself. Deny statements (the TLS-only
// guards on queues and topics) may use wildcards: they take away, never
// grant.
func TestIAMLeastPrivilege(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    func(*testing.T) *synthesized
	}{{"full", full}, {"existing-key", existingKey}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(t)
			docs := policyDocs(s)
			if len(docs) < 5 {
				t.Fatalf("found %d policy documents, want at least 5 (roles, policies, key, queues)", len(docs))
			}
			for _, d := range docs {
				for i, st := range d.statements {
					where := d.resource + "." + d.property + "[" + st2sid(st, i) + "]"
					if st["Effect"] == "Deny" {
						continue
					}
					if st["Effect"] != "Allow" {
						t.Errorf("%s: Effect = %v, want Allow or Deny", where, st["Effect"])
					}
					for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
						if _, ok := st[k]; ok {
							t.Errorf("%s: has %s", where, k)
						}
					}
					actions := strs(st["Action"])
					if len(actions) == 0 {
						t.Errorf("%s: no Action", where)
					}
					for _, a := range actions {
						if strings.Contains(a, "*") {
							t.Errorf("%s: wildcard action %q", where, a)
						}
					}
					if p, ok := st["Principal"]; ok && strings.Contains(render(p), `"*"`) {
						t.Errorf("%s: allows any principal: %s", where, render(p))
					}
					for _, r := range strs(st["Resource"]) {
						switch {
						case r != "*":
						case d.property == "KeyPolicy":
						case reflect.DeepEqual(actions, []string{"ecr:GetAuthorizationToken"}):
						default:
							t.Errorf("%s: Resource \"*\" for %q; only ecr:GetAuthorizationToken may have it", where, actions)
						}
						if strings.HasSuffix(r, ":*:*") || strings.Contains(r, ":*:") {
							t.Errorf("%s: resource %q has a wildcard account, region or service part", where, r)
						}
					}
				}
			}
		})
	}
}

func st2sid(st map[string]interface{}, i int) string {
	if sid, ok := st["Sid"].(string); ok {
		return sid
	}
	return fmt.Sprintf("#%d", i)
}

// grants returns, for the identity policies attached to the role with
// construct id roleID, each allowed action with its sorted resources.
func grants(t *testing.T, s *synthesized, roleID string) map[string][]string {
	t.Helper()
	role := logicalID(t, s, "AWS::IAM::Role", roleID)
	out := map[string][]string{}
	add := func(doc interface{}) {
		for _, st := range statements(doc) {
			if st["Effect"] != "Allow" {
				continue
			}
			for _, a := range strs(st["Action"]) {
				out[a] = append(out[a], strs(st["Resource"])...)
				sort.Strings(out[a])
			}
		}
	}
	for _, p := range s.resources("AWS::IAM::Policy") {
		props := p["Properties"].(map[string]interface{})
		for _, r := range props["Roles"].([]interface{}) {
			if render(r) == "${"+role+"}" {
				add(props["PolicyDocument"])
			}
		}
	}
	if inline, ok := s.resources("AWS::IAM::Role")[role]["Properties"].(map[string]interface{})["Policies"].([]interface{}); ok {
		for _, p := range inline {
			add(p.(map[string]interface{})["PolicyDocument"])
		}
	}
	if managed, ok := s.resources("AWS::IAM::Role")[role]["Properties"].(map[string]interface{})["ManagedPolicyArns"]; ok {
		t.Errorf("role %s has managed policies %v; want only its own statements", roleID, managed)
	}
	return out
}

// TestSignerPermissions lists exactly what the signer may do, on what.
func TestSignerPermissions(t *testing.T) {
	s := full(t)
	table := "${" + logicalID(t, s, "AWS::DynamoDB::Table", "Verdicts") + ".Arn}"
	key := "${" + logicalID(t, s, "AWS::KMS::Key", "SigningKey") + ".Arn}"
	logs := "${" + logicalID(t, s, "AWS::Logs::LogGroup", "SignerLogs") + ".Arn}"
	queue := "${" + logicalID(t, s, "AWS::SQS::Queue", "FailedInvocationQueue") + ".Arn}"
	repos := sorted(
		"arn:aws:ecr:"+testRegion+":"+testAccount+":repository/team/*",
		"arn:aws:ecr:"+testRegion+":"+testAccount+":repository/base-images",
	)
	want := map[string][]string{
		"kms:Sign":                  {key},
		"kms:GetPublicKey":          sorted(key, testVerify),
		"kms:DescribeKey":           sorted(key, testVerify),
		"ecr:GetAuthorizationToken": {"*"},
		"dynamodb:GetItem":          {table},
		"dynamodb:PutItem":          {table},
		"dynamodb:DeleteItem":       {table},
		"logs:CreateLogStream":      {logs},
		"logs:PutLogEvents":         {logs},
		// The on-failure destination: Lambda sends failed invocations with the function's role.
		"sqs:SendMessage":        {queue},
		"sqs:GetQueueAttributes": {queue},
		"sqs:GetQueueUrl":        {queue},
	}
	for _, a := range signerECRActions {
		want[a] = repos
	}
	if got := grants(t, s, "SignerRole"); !reflect.DeepEqual(got, want) {
		t.Errorf("signer role grants:\n got %v\nwant %v", got, want)
	}
}

// TestWebhookPermissions checks that the webhook only reads verdicts.
func TestWebhookPermissions(t *testing.T) {
	s := full(t)
	table := "${" + logicalID(t, s, "AWS::DynamoDB::Table", "Verdicts") + ".Arn}"
	want := map[string][]string{
		"dynamodb:GetItem": {table},
	}
	if got := grants(t, s, "WebhookRole"); !reflect.DeepEqual(got, want) {
		t.Errorf("webhook role grants:\n got %v\nwant %v", got, want)
	}
}

// TestOnlySignerSigns checks that no identity policy other than the
// signer's mentions kms:Sign.
func TestOnlySignerSigns(t *testing.T) {
	s := full(t)
	signer := "${" + logicalID(t, s, "AWS::IAM::Role", "SignerRole") + "}"
	for id, p := range s.resources("AWS::IAM::Policy") {
		props := p["Properties"].(map[string]interface{})
		for _, st := range statements(props["PolicyDocument"]) {
			for _, a := range strs(st["Action"]) {
				if a == "kms:Sign" && !reflect.DeepEqual(strs(props["Roles"]), []string{signer}) {
					t.Errorf("policy %s grants kms:Sign to %v", id, strs(props["Roles"]))
				}
			}
		}
	}
}
