package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
)

func TestSigningKey(t *testing.T) {
	s := full(t)
	s.count(t, "AWS::KMS::Key", 2) // signing key, alarm topic key
	s.hasProps(t, "AWS::KMS::Key", map[string]interface{}{
		"KeySpec":  "ECC_NIST_P256",
		"KeyUsage": "SIGN_VERIFY",
	})
	s.hasResource(t, "AWS::KMS::Key", map[string]interface{}{
		"Properties":     assertions.Match_ObjectLike(&map[string]interface{}{"KeySpec": "ECC_NIST_P256"}),
		"DeletionPolicy": "Retain",
	})
	s.hasProps(t, "AWS::KMS::Alias", map[string]interface{}{
		"AliasName":   "alias/signet",
		"TargetKeyId": map[string]interface{}{"Fn::GetAtt": []interface{}{logicalID(t, s, "AWS::KMS::Key", "SigningKey"), "Arn"}},
	})

	// Only the signer role may sign; the account administers the key but
	// may not sign with it, so no IAM policy can grant signing to anyone else.
	key := s.resources("AWS::KMS::Key")[logicalID(t, s, "AWS::KMS::Key", "SigningKey")]
	role := logicalID(t, s, "AWS::IAM::Role", "SignerRole")
	var signers []string
	for _, st := range statements(key["Properties"].(map[string]interface{})["KeyPolicy"]) {
		if st["Effect"] != "Allow" {
			continue
		}
		principal := render(st["Principal"].(map[string]interface{})["AWS"])
		actions := strs(st["Action"])
		switch principal {
		case "${" + role + ".Arn}":
			if want := sorted(signerKeyActions...); !reflect.DeepEqual(actions, want) {
				t.Errorf("signer's key actions = %q, want %q", actions, want)
			}
		case "arn:aws:iam::" + testAccount + ":root":
			if want := sorted(keyAdminActions...); !reflect.DeepEqual(actions, want) {
				t.Errorf("account's key actions = %q, want %q", actions, want)
			}
		default:
			t.Errorf("key policy allows %s, want only the account root and the signer role", principal)
		}
		for _, a := range actions {
			if a == "kms:Sign" || a == "kms:CreateGrant" {
				signers = append(signers, principal+" "+a)
			}
		}
	}
	if want := []string{"${" + role + ".Arn} kms:Sign"}; !reflect.DeepEqual(signers, want) {
		t.Errorf("principals that may sign or grant = %q, want %q", signers, want)
	}
}

func TestExistingSigningKey(t *testing.T) {
	s := existingKey(t)
	s.count(t, "AWS::KMS::Key", 0)
	s.count(t, "AWS::KMS::Alias", 0)
	s.count(t, "AWS::SNS::Topic", 0)
	s.hasProps(t, "AWS::Lambda::Function", map[string]interface{}{
		"Environment": map[string]interface{}{"Variables": map[string]interface{}{
			envKMSKey:   "awskms:///" + testKeyArn,
			envTable:    assertions.Match_AnyValue(),
			envLogLevel: "info",
		}},
		"ReservedConcurrentExecutions": 2,
	})
	s.hasProps(t, "AWS::IAM::Policy", map[string]interface{}{
		"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
			map[string]interface{}{
				"Sid": "SignWithSigningKey", "Effect": "Allow",
				"Action": []interface{}{"kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"}, "Resource": testKeyArn,
			},
		})},
	})
	s.hasProps(t, "AWS::CloudWatch::Alarm", map[string]interface{}{
		"AlarmActions": []interface{}{testTopic},
	})
	outputs := s.json["Outputs"].(map[string]interface{})
	if _, ok := outputs["SigningKeyAlias"]; ok {
		t.Errorf("outputs have SigningKeyAlias for a key the stack did not create")
	}
	if got := render(outputs["SigningKeyArn"].(map[string]interface{})["Value"]); got != testKeyArn {
		t.Errorf("output SigningKeyArn = %s, want %s", got, testKeyArn)
	}
}

func TestVerdictTable(t *testing.T) {
	s := full(t)
	s.count(t, "AWS::DynamoDB::Table", 1)
	s.hasResource(t, "AWS::DynamoDB::Table", map[string]interface{}{
		"DeletionPolicy": "Retain",
		"Properties": map[string]interface{}{
			"BillingMode":                      "PAY_PER_REQUEST",
			"PointInTimeRecoverySpecification": map[string]interface{}{"PointInTimeRecoveryEnabled": true},
			"SSESpecification":                 map[string]interface{}{"SSEEnabled": true},
			"DeletionProtectionEnabled":        true,
			"TimeToLiveSpecification":          map[string]interface{}{"AttributeName": "ttl", "Enabled": true},
			"KeySchema": []interface{}{
				map[string]interface{}{"AttributeName": "pk", "KeyType": "HASH"},
				map[string]interface{}{"AttributeName": "sk", "KeyType": "RANGE"},
			},
			"AttributeDefinitions": []interface{}{
				map[string]interface{}{"AttributeName": "pk", "AttributeType": "S"},
				map[string]interface{}{"AttributeName": "sk", "AttributeType": "S"},
				map[string]interface{}{"AttributeName": "gsiDigest", "AttributeType": "S"},
				map[string]interface{}{"AttributeName": "repository", "AttributeType": "S"},
			},
			"GlobalSecondaryIndexes": []interface{}{map[string]interface{}{
				"IndexName": "by-digest",
				"KeySchema": []interface{}{
					map[string]interface{}{"AttributeName": "gsiDigest", "KeyType": "HASH"},
					map[string]interface{}{"AttributeName": "repository", "KeyType": "RANGE"},
				},
				"Projection": map[string]interface{}{"ProjectionType": "ALL"},
			}},
		},
	})
}

// TestTableSchemaMatchesVerdictStore reads internal/verdict/dynamo.go, the
// code that uses the table, and checks that the stack's schema is its schema.
func TestTableSchemaMatchesVerdictStore(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "internal", "verdict", "dynamo.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("reading the verdict store's schema: %v", err)
	}
	consts := map[string]string{}
	literals := map[string]map[string]bool{} // function name -> string literals in it
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok || d.Tok != token.CONST {
					continue
				}
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		case *ast.FuncDecl:
			lits := map[string]bool{}
			ast.Inspect(d, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					lits[s] = true
				}
				return true
			})
			literals[d.Name.Name] = lits
		}
	}
	for name, want := range map[string]string{"attrPK": tablePK, "attrSK": tableSK, "attrGSI": indexPK, "DigestIndex": indexName} {
		if got := consts[name]; got != want {
			t.Errorf("verdict.%s = %q, the stack uses %q", name, got, want)
		}
	}
	if !literals["CreateTable"][indexSK] {
		t.Errorf("verdict.CreateTable does not name %q (the index sort key the stack uses)", indexSK)
	}
	if !literals["Lock"][tableTTLField] {
		t.Errorf("verdict.Lock does not write %q (the table's TTL attribute)", tableTTLField)
	}
}

func TestSignerFunction(t *testing.T) {
	s := full(t)
	s.count(t, "AWS::Lambda::Function", 1)
	keyID := logicalID(t, s, "AWS::KMS::Key", "SigningKey")
	tableID := logicalID(t, s, "AWS::DynamoDB::Table", "Verdicts")
	s.hasProps(t, "AWS::Lambda::Function", map[string]interface{}{
		"Runtime":                      "provided.al2023",
		"Architectures":                []interface{}{"arm64"},
		"Handler":                      "bootstrap",
		"MemorySize":                   256,
		"Timeout":                      60,
		"ReservedConcurrentExecutions": 5,
		"Role":                         map[string]interface{}{"Fn::GetAtt": []interface{}{logicalID(t, s, "AWS::IAM::Role", "SignerRole"), "Arn"}},
		"LoggingConfig":                map[string]interface{}{"LogGroup": assertions.Match_AnyValue()},
		"Environment": map[string]interface{}{"Variables": map[string]interface{}{
			envKMSKey:   map[string]interface{}{"Fn::Join": []interface{}{"", []interface{}{"awskms:///", map[string]interface{}{"Fn::GetAtt": []interface{}{keyID, "Arn"}}}}},
			envTable:    map[string]interface{}{"Ref": tableID},
			envPolicy:   `{"mode":"enforce","rules":[{"repository":"team/*"}]}`,
			envLogLevel: "debug",
		}},
	})
	// The code is the asset folder's content, as a file asset (no Docker).
	_, fn := s.only(t, "AWS::Lambda::Function")
	code := fn["Properties"].(map[string]interface{})["Code"].(map[string]interface{})
	if _, ok := code["S3Key"]; !ok {
		t.Errorf("function Code = %v, want an S3 file asset", code)
	}
	if md, _ := fn["Metadata"].(map[string]interface{}); md != nil && md["aws:asset:is-bundled"] == true {
		t.Errorf("function code is bundled; want the prebuilt dist/signer folder as is")
	}

	s.hasProps(t, "AWS::Logs::LogGroup", map[string]interface{}{"RetentionInDays": 365})
	s.hasProps(t, "AWS::Lambda::EventInvokeConfig", map[string]interface{}{
		"FunctionName":             map[string]interface{}{"Ref": logicalID(t, s, "AWS::Lambda::Function", "Signer")},
		"MaximumRetryAttempts":     lambdaRetries,
		"MaximumEventAgeInSeconds": maxLambdaEventAge * 60,
		"DestinationConfig": map[string]interface{}{"OnFailure": map[string]interface{}{
			"Destination": map[string]interface{}{"Fn::GetAtt": []interface{}{logicalID(t, s, "AWS::SQS::Queue", "FailedInvocationQueue"), "Arn"}},
		}},
	})
}

func TestQueuesAreEncrypted(t *testing.T) {
	s := full(t)
	s.count(t, "AWS::SQS::Queue", 2)
	s.allProps(t, "AWS::SQS::Queue", map[string]interface{}{
		"SqsManagedSseEnabled":   true,
		"MessageRetentionPeriod": queueRetentionDay * 24 * 3600,
	})
	// Each queue refuses requests without TLS.
	for id := range s.resources("AWS::SQS::Queue") {
		s.hasProps(t, "AWS::SQS::QueuePolicy", map[string]interface{}{
			"Queues": []interface{}{map[string]interface{}{"Ref": id}},
			"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
				map[string]interface{}{
					"Effect":    "Deny",
					"Condition": map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}},
					"Action":    "sqs:*",
					"Principal": map[string]interface{}{"AWS": "*"},
					"Resource":  map[string]interface{}{"Fn::GetAtt": []interface{}{id, "Arn"}},
				},
			})},
		})
	}
}

func TestEventRule(t *testing.T) {
	s := full(t)
	s.count(t, "AWS::Events::Rule", 1)
	s.hasProps(t, "AWS::Events::Rule", map[string]interface{}{
		"State": "ENABLED",
		"EventPattern": map[string]interface{}{
			"source":      []interface{}{"aws.ecr"},
			"detail-type": []interface{}{"ECR Image Action"},
			"detail": map[string]interface{}{
				"action-type":     []interface{}{"PUSH", "DELETE"},
				"result":          []interface{}{"SUCCESS"},
				"repository-name": []interface{}{map[string]interface{}{"prefix": "team/"}, "base-images"},
				"$or": []interface{}{
					map[string]interface{}{"image-tag": []interface{}{map[string]interface{}{"exists": false}}},
					map[string]interface{}{"image-tag": []interface{}{map[string]interface{}{"anything-but": map[string]interface{}{"prefix": "sha256-"}}}},
				},
			},
		},
		"Targets": []interface{}{map[string]interface{}{
			"Arn":              map[string]interface{}{"Fn::GetAtt": []interface{}{logicalID(t, s, "AWS::Lambda::Function", "Signer"), "Arn"}},
			"Id":               assertions.Match_AnyValue(),
			"RetryPolicy":      map[string]interface{}{"MaximumRetryAttempts": ruleRetries, "MaximumEventAgeInSeconds": maxRuleEventAge * 60},
			"DeadLetterConfig": map[string]interface{}{"Arn": map[string]interface{}{"Fn::GetAtt": []interface{}{logicalID(t, s, "AWS::SQS::Queue", "EventDeadLetterQueue"), "Arn"}}},
		}},
	})
	// EventBridge may write to its dead-letter queue, for this rule only.
	ruleID := logicalID(t, s, "AWS::Events::Rule", "ImageActions")
	s.hasProps(t, "AWS::SQS::QueuePolicy", map[string]interface{}{
		"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
			assertions.Match_ObjectLike(&map[string]interface{}{
				"Effect":    "Allow",
				"Action":    "sqs:SendMessage",
				"Principal": map[string]interface{}{"Service": "events.amazonaws.com"},
				"Condition": map[string]interface{}{"ArnEquals": map[string]interface{}{"aws:SourceArn": map[string]interface{}{"Fn::GetAtt": []interface{}{ruleID, "Arn"}}}},
			}),
		})},
	})
	s.hasProps(t, "AWS::Lambda::Permission", map[string]interface{}{
		"Action":    "lambda:InvokeFunction",
		"Principal": "events.amazonaws.com",
		"SourceArn": map[string]interface{}{"Fn::GetAtt": []interface{}{ruleID, "Arn"}},
	})
}

func TestWebhookRoleTrust(t *testing.T) {
	s := full(t)
	issuer := strings.TrimPrefix(testOIDC, "arn:aws:iam::123456789012:oidc-provider/")
	s.hasProps(t, "AWS::IAM::Role", map[string]interface{}{
		"AssumeRolePolicyDocument": map[string]interface{}{"Statement": []interface{}{
			map[string]interface{}{
				"Effect":    "Allow",
				"Principal": map[string]interface{}{"Service": "pods.eks.amazonaws.com"},
				"Action":    []interface{}{"sts:AssumeRole", "sts:TagSession"},
				"Condition": map[string]interface{}{"StringEquals": map[string]interface{}{
					"aws:RequestTag/kubernetes-namespace":       "signet-system",
					"aws:RequestTag/kubernetes-service-account": "signet-webhook",
				}},
			},
			map[string]interface{}{
				"Effect":    "Allow",
				"Principal": map[string]interface{}{"Federated": testOIDC},
				"Action":    "sts:AssumeRoleWithWebIdentity",
				"Condition": map[string]interface{}{"StringEquals": map[string]interface{}{
					issuer + ":sub": "system:serviceaccount:signet-system:signet-webhook",
					issuer + ":aud": "sts.amazonaws.com",
				}},
			},
		}},
	})

	// Without an OIDC provider the role trusts Pod Identity alone.
	e := existingKey(t)
	e.hasProps(t, "AWS::IAM::Role", map[string]interface{}{
		"AssumeRolePolicyDocument": map[string]interface{}{"Statement": []interface{}{
			assertions.Match_ObjectLike(&map[string]interface{}{"Principal": map[string]interface{}{"Service": "pods.eks.amazonaws.com"}}),
		}},
	})
}

func TestAlarms(t *testing.T) {
	s := full(t)
	topic := logicalID(t, s, "AWS::SNS::Topic", "AlarmTopic")
	s.count(t, "AWS::CloudWatch::Alarm", 4)
	s.allProps(t, "AWS::CloudWatch::Alarm", map[string]interface{}{
		"AlarmActions":     []interface{}{map[string]interface{}{"Ref": topic}},
		"TreatMissingData": "notBreaching",
	})
	fn := map[string]interface{}{"Ref": logicalID(t, s, "AWS::Lambda::Function", "Signer")}
	for _, metric := range []string{"Errors", "Throttles"} {
		s.hasProps(t, "AWS::CloudWatch::Alarm", map[string]interface{}{
			"Namespace":          "AWS/Lambda",
			"MetricName":         metric,
			"Dimensions":         []interface{}{map[string]interface{}{"Name": "FunctionName", "Value": fn}},
			"Statistic":          "Sum",
			"Threshold":          1,
			"ComparisonOperator": "GreaterThanOrEqualToThreshold",
		})
	}
	for _, q := range []string{"EventDeadLetterQueue", "FailedInvocationQueue"} {
		s.hasProps(t, "AWS::CloudWatch::Alarm", map[string]interface{}{
			"Namespace":          "AWS/SQS",
			"MetricName":         "ApproximateNumberOfMessagesVisible",
			"Dimensions":         []interface{}{map[string]interface{}{"Name": "QueueName", "Value": map[string]interface{}{"Fn::GetAtt": []interface{}{logicalID(t, s, "AWS::SQS::Queue", q), "QueueName"}}}},
			"Threshold":          0,
			"ComparisonOperator": "GreaterThanThreshold",
		})
	}
	// The alarm topic is encrypted with a rotating key CloudWatch may use, and
	// takes publishes over TLS only.
	topicKey := logicalID(t, s, "AWS::KMS::Key", "AlarmTopicKey")
	s.hasProps(t, "AWS::SNS::Topic", map[string]interface{}{
		"KmsMasterKeyId": map[string]interface{}{"Fn::GetAtt": []interface{}{topicKey, "Arn"}},
	})
	s.hasProps(t, "AWS::KMS::Key", map[string]interface{}{
		"EnableKeyRotation": true,
		"KeyPolicy": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
			assertions.Match_ObjectLike(&map[string]interface{}{
				"Principal": map[string]interface{}{"Service": "cloudwatch.amazonaws.com"},
				"Action":    []interface{}{"kms:Decrypt", "kms:GenerateDataKey"},
			}),
		})},
	})
	s.hasProps(t, "AWS::SNS::TopicPolicy", map[string]interface{}{
		"PolicyDocument": map[string]interface{}{"Statement": assertions.Match_ArrayWith(&[]interface{}{
			assertions.Match_ObjectLike(&map[string]interface{}{
				"Effect":    "Deny",
				"Condition": map[string]interface{}{"Bool": map[string]interface{}{"aws:SecureTransport": "false"}},
			}),
		})},
	})
	s.hasProps(t, "AWS::SNS::Subscription", map[string]interface{}{
		"Protocol": "email", "Endpoint": "ops@example.com",
	})
}

func TestOutputs(t *testing.T) {
	s := full(t)
	outputs := s.json["Outputs"].(map[string]interface{})
	key := "${" + logicalID(t, s, "AWS::KMS::Key", "SigningKey") + ".Arn}"
	want := map[string]string{
		"SigningKeyArn":            key,
		"SigningKeyRef":            "awskms:///" + key,
		"SigningKeyAlias":          "alias/signet",
		"TableName":                "${" + logicalID(t, s, "AWS::DynamoDB::Table", "Verdicts") + "}",
		"DeadLetterQueueUrl":       "${" + logicalID(t, s, "AWS::SQS::Queue", "EventDeadLetterQueue") + "}",
		"FailedInvocationQueueUrl": "${" + logicalID(t, s, "AWS::SQS::Queue", "FailedInvocationQueue") + "}",
		"WebhookRoleArn":           "${" + logicalID(t, s, "AWS::IAM::Role", "WebhookRole") + ".Arn}",
		"SignerFunctionName":       "${" + logicalID(t, s, "AWS::Lambda::Function", "Signer") + "}",
		"AlarmTopicArn":            "${" + logicalID(t, s, "AWS::SNS::Topic", "AlarmTopic") + "}",
	}
	for name, value := range want {
		o, ok := outputs[name].(map[string]interface{})
		if !ok {
			t.Errorf("output %s missing", name)
			continue
		}
		if got := render(o["Value"]); got != value {
			t.Errorf("output %s = %s, want %s", name, got, value)
		}
	}
	if len(outputs) != len(want) {
		t.Errorf("template has %d outputs, want %d", len(outputs), len(want))
	}
}

// logicalID returns the logical id of the resource of type typ whose
// construct id is id (CDK adds a hash suffix, and ids of L2 constructs sit
// one level up from their Resource).
func logicalID(t *testing.T, s *synthesized, typ, id string) string {
	t.Helper()
	var found []string
	for lid, r := range s.resources(typ) {
		path, _ := r["Metadata"].(map[string]interface{})["aws:cdk:path"].(string)
		if path == s.cfg.StackName+"/"+id+"/Resource" || path == s.cfg.StackName+"/"+id {
			found = append(found, lid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("found %d %s with construct id %s, want 1", len(found), typ, id)
	}
	return found[0]
}
