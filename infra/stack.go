package main

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// The verdict table's schema. It must match internal/verdict/dynamo.go
// (attrPK, attrSK, attrGSI, DigestIndex and CreateTable), which
// TestTableSchemaMatchesVerdictStore checks.
const (
	tablePK       = "pk"
	tableSK       = "sk"
	indexName     = "by-digest"
	indexPK       = "gsiDigest"
	indexSK       = "repository"
	tableTTLField = "ttl"
)

// The environment of the signer function, read once by functions/signer.
const (
	envKMSKey   = "SIGNET_KMS_KEY"
	envTable    = "SIGNET_TABLE"
	envPolicy   = "SIGNET_POLICY"
	envLogLevel = "SIGNET_LOG_LEVEL"
)

// The event rule's pattern values: what ECR sends for a finished push or delete.
const (
	ecrSource     = "aws.ecr"
	ecrDetailType = "ECR Image Action"
	// signatureTagPrefix starts every tag cosign-style signing writes:
	// signet's own sha256-<hex>.sig and .att, cosign's .sbom, and cosign
	// v3's referrers fallback tag sha256-<hex>. The rule drops pushes and
	// deletes of such tags, so signing an image does not invoke the signer
	// again for the two tags it pushes.
	signatureTagPrefix = "sha256-"
)

// Timing of delivery and retries. EventBridge retries only failures to hand
// the event to Lambda; Lambda's asynchronous queue then owns the event,
// keeps it through throttling for up to maxLambdaEventAge, retries a failed
// invocation lambdaRetries times and sends the invocation record to the
// failure queue after that. Both queues keep messages for queueRetention.
const (
	ruleRetries       = 8
	maxRuleEventAge   = 2 * 60 // minutes
	lambdaRetries     = 2
	maxLambdaEventAge = 6 * 60 // minutes, Lambda's maximum
	queueRetentionDay = 14     // SQS's maximum
)

// keyAdminActions is what the account (and through it, IAM administrators)
// may do with signet's keys: manage them, never use them to sign, encrypt or
// decrypt, and never hand out grants that would.
var keyAdminActions = []string{
	"kms:CancelKeyDeletion",
	"kms:CreateAlias",
	"kms:DeleteAlias",
	"kms:DescribeKey",
	"kms:DisableKey",
	"kms:DisableKeyRotation",
	"kms:EnableKey",
	"kms:EnableKeyRotation",
	"kms:GetKeyPolicy",
	"kms:GetKeyRotationStatus",
	"kms:GetPublicKey",
	"kms:ListGrants",
	"kms:ListKeyPolicies",
	"kms:ListResourceTags",
	"kms:PutKeyPolicy",
	"kms:RevokeGrant",
	"kms:ScheduleKeyDeletion",
	"kms:TagResource",
	"kms:UntagResource",
	"kms:UpdateAlias",
	"kms:UpdateKeyDescription",
}

// signerKeyActions is all the signer does with the signing key.
var signerKeyActions = []string{"kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"}

// signerECRActions is what the signer does in the repositories it signs:
// resolve and read the image, upload the signature's blobs and put its tags.
var signerECRActions = []string{
	"ecr:BatchGetImage",
	"ecr:GetDownloadUrlForLayer",
	"ecr:BatchCheckLayerAvailability",
	"ecr:InitiateLayerUpload",
	"ecr:UploadLayerPart",
	"ecr:CompleteLayerUpload",
	"ecr:PutImage",
}

// Signet is the whole service in one stack. Its fields are the resources
// other code (tests, outputs) refers to.
type Signet struct {
	Stack awscdk.Stack
	cfg   Config

	SigningKey   awskms.IKey
	Table        awsdynamodb.Table
	SignerRole   awsiam.Role
	Signer       awslambda.Function
	Rule         awsevents.Rule
	EventDLQ     awssqs.Queue
	FailureQueue awssqs.Queue
	WebhookRole  awsiam.Role
	AlarmTopic   awssns.ITopic
}

// NewSignet builds the stack from a validated configuration.
func NewSignet(scope constructs.Construct, cfg Config) *Signet {
	var env *awscdk.Environment
	if cfg.Account != "" || cfg.Region != "" {
		env = &awscdk.Environment{Account: optional(cfg.Account), Region: optional(cfg.Region)}
	}
	s := &Signet{
		Stack: awscdk.NewStack(scope, jsii.String(cfg.StackName), &awscdk.StackProps{
			Env:         env,
			Description: jsii.String("signet: signs ECR images on push with a KMS key and records a verdict per digest"),
		}),
		cfg: cfg,
	}
	s.SignerRole = awsiam.NewRole(s.Stack, jsii.String("SignerRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("signet signer Lambda: signs images in the configured ECR repositories"),
	})
	s.addSigningKey()
	s.addTable()
	s.addSigner()
	s.addRule()
	s.addWebhookRole()
	s.addAlarms()
	s.addOutputs()
	s.addNagSuppressions()
	return s
}

// addSigningKey creates the ECC signing key, or refers to the one named in
// the context. A created key's policy grants kms:Sign to the signer role
// only, so IAM policies alone cannot grant signing; the account keeps
// administration (kms:PutKeyPolicy), which docs/deploy.md says to restrict.
func (s *Signet) addSigningKey() {
	if s.cfg.KeyArn != "" {
		s.SigningKey = awskms.Key_FromKeyArn(s.Stack, jsii.String("SigningKey"), jsii.String(s.cfg.KeyArn))
	} else {
		policy := awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{
			Statements: &[]awsiam.PolicyStatement{
				keyAdminStatement(),
				awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Sid:        jsii.String("SignerSigns"),
					Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(s.SignerRole.RoleArn())},
					Actions:    jsii.Strings(signerKeyActions...),
					Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
				}),
			},
		})
		s.SigningKey = awskms.NewKey(s.Stack, jsii.String("SigningKey"), &awskms.KeyProps{
			Description:   jsii.String("signet image signing key (cosign-compatible ECDSA P-256)"),
			KeySpec:       awskms.KeySpec_ECC_NIST_P256,
			KeyUsage:      awskms.KeyUsage_SIGN_VERIFY,
			Alias:         jsii.String(s.cfg.KeyAlias),
			Policy:        policy,
			PendingWindow: awscdk.Duration_Days(jsii.Number(30)),
			RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		})
	}
	s.SignerRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("SignWithSigningKey"),
		Actions:   jsii.Strings(signerKeyActions...),
		Resources: &[]*string{s.SigningKey.KeyArn()},
	}))
	if len(s.cfg.VerifyKeyArns) > 0 {
		// Verify rules check signatures locally against these keys' public keys.
		s.SignerRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReadVerificationKeys"),
			Actions:   jsii.Strings("kms:GetPublicKey", "kms:DescribeKey"),
			Resources: jsii.Strings(s.cfg.VerifyKeyArns...),
		}))
	}
}

// keyAdminStatement is the key policy statement that leaves a key's
// administration to the account.
func keyAdminStatement() awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AccountAdministersKey"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewAccountRootPrincipal()},
		Actions:    jsii.Strings(keyAdminActions...),
		Resources:  jsii.Strings("*"),
	})
}

// addTable creates the verdict table with the schema internal/verdict uses.
func (s *Signet) addTable() {
	s.Table = awsdynamodb.NewTable(s.Stack, jsii.String("Verdicts"), &awsdynamodb.TableProps{
		TableName:    optional(s.cfg.TableName),
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(tablePK), Type: awsdynamodb.AttributeType_STRING},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String(tableSK), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		DeletionProtection:  jsii.Bool(true),
		TimeToLiveAttribute: jsii.String(tableTTLField),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	})
	s.Table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String(indexName),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(indexPK), Type: awsdynamodb.AttributeType_STRING},
		SortKey:        &awsdynamodb.Attribute{Name: jsii.String(indexSK), Type: awsdynamodb.AttributeType_STRING},
		ProjectionType: awsdynamodb.ProjectionType_ALL,
	})
}

// repositoryArns are the ARNs of the repositories the signer may sign in.
func (s *Signet) repositoryArns() *[]*string {
	var arns []*string
	for _, r := range s.cfg.Repositories {
		arns = append(arns, s.Stack.FormatArn(&awscdk.ArnComponents{
			Service:      jsii.String("ecr"),
			Resource:     jsii.String("repository"),
			ResourceName: jsii.String(r),
		}))
	}
	return &arns
}

// newQueue creates an encrypted, TLS-only queue that holds what could not be
// delivered.
func (s *Signet) newQueue(id string) awssqs.Queue {
	return awssqs.NewQueue(s.Stack, jsii.String(id), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(queueRetentionDay)),
	})
}

// addSigner creates the signer function and gives its role exactly what it
// uses.
func (s *Signet) addSigner() {
	s.FailureQueue = s.newQueue("FailedInvocationQueue")
	logs := awslogs.NewLogGroup(s.Stack, jsii.String("SignerLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_YEAR,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	env := map[string]*string{
		envKMSKey:   awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("awskms:///"), s.SigningKey.KeyArn()}),
		envTable:    s.Table.TableName(),
		envLogLevel: jsii.String(s.cfg.LogLevel),
	}
	if s.cfg.Policy != "" {
		env[envPolicy] = jsii.String(s.cfg.Policy)
	}
	s.Signer = awslambda.NewFunction(s.Stack, jsii.String("Signer"), &awslambda.FunctionProps{
		Description:  jsii.String("signet: signs ECR images on push and records their verdicts"),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(s.cfg.SignerAssetDir), nil),
		Role:         s.SignerRole,
		MemorySize:   jsii.Number(256),
		Timeout:      awscdk.Duration_Seconds(jsii.Number(60)),
		// See defaultReservedConcurrency for the sizing.
		ReservedConcurrentExecutions: jsii.Number(float64(s.cfg.ReservedConcurrency)),
		Environment:                  &env,
		LogGroup:                     logs,
		RetryAttempts:                jsii.Number(lambdaRetries),
		MaxEventAge:                  awscdk.Duration_Minutes(jsii.Number(maxLambdaEventAge)),
		OnFailure:                    awslambdadestinations.NewSqsDestination(s.FailureQueue),
	})

	add := func(sid string, actions []string, resources ...*string) {
		s.SignerRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String(sid),
			Actions:   jsii.Strings(actions...),
			Resources: &resources,
		}))
	}
	add("WriteOwnLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, logs.LogGroupArn())
	add("ReadAndSignImages", signerECRActions, *s.repositoryArns()...)
	// GetAuthorizationToken has no resource type: "*" is the only form IAM accepts.
	add("RegistryLogin", []string{"ecr:GetAuthorizationToken"}, jsii.String("*"))
	// GetItem and PutItem for verdicts and audit items, PutItem and
	// DeleteItem for the per-digest lease: nothing the signer does queries.
	add("RecordVerdicts", []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}, s.Table.TableArn())
}

// ruleDetail is the rule's pattern for the event's detail: successful
// pushes and deletes, in the repositories repositoryFilter names (all when
// it is empty), except those of a tag starting with signatureTagPrefix.
// An event without an image-tag (an untagged push, such as a platform
// manifest of an index) still matches. Filtering tags here only saves
// invocations: the signer still tells a signature from an image by its
// manifest, so loop safety does not depend on the rule.
func ruleDetail(repositoryFilter []interface{}) map[string]interface{} {
	detail := map[string]interface{}{
		"action-type": []interface{}{"PUSH", "DELETE"},
		"result":      []interface{}{"SUCCESS"},
		"$or": []interface{}{
			map[string]interface{}{"image-tag": []interface{}{map[string]interface{}{"exists": false}}},
			map[string]interface{}{"image-tag": []interface{}{
				map[string]interface{}{"anything-but": map[string]interface{}{"prefix": signatureTagPrefix}},
			}},
		},
	}
	if len(repositoryFilter) > 0 {
		detail["repository-name"] = repositoryFilter
	}
	return detail
}

// addRule routes successful pushes and deletes in the configured
// repositories to the signer, leaving out signature tags (see ruleDetail).
func (s *Signet) addRule() {
	detail := ruleDetail(s.cfg.RepositoryFilter())
	s.Rule = awsevents.NewRule(s.Stack, jsii.String("ImageActions"), &awsevents.RuleProps{
		Description: jsii.String("signet: ECR pushes and deletes to sign or record, except of sha256-* signature tags"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(ecrSource),
			DetailType: jsii.Strings(ecrDetailType),
			Detail:     &detail,
		},
	})
	s.EventDLQ = s.newQueue("EventDeadLetterQueue")
	s.Rule.AddTarget(awseventstargets.NewLambdaFunction(s.Signer, &awseventstargets.LambdaFunctionProps{
		DeadLetterQueue: s.EventDLQ,
		RetryAttempts:   jsii.Number(ruleRetries),
		MaxEventAge:     awscdk.Duration_Minutes(jsii.Number(maxRuleEventAge)),
	}))
}

// addWebhookRole creates the webhook's read-only role, assumable from the
// cluster by the webhook's service account only.
func (s *Signet) addWebhookRole() {
	var principals []awsiam.IPrincipal
	if s.cfg.PodIdentity {
		principals = append(principals, awsiam.NewPrincipalWithConditions(
			awsiam.NewSessionTagsPrincipal(awsiam.NewServicePrincipal(jsii.String("pods.eks.amazonaws.com"), nil)),
			&map[string]interface{}{"StringEquals": map[string]interface{}{
				"aws:RequestTag/kubernetes-namespace":       s.cfg.WebhookNamespace,
				"aws:RequestTag/kubernetes-service-account": s.cfg.WebhookServiceAccount,
			}},
		))
	}
	if arn := s.cfg.ClusterOIDCProviderArn; arn != "" {
		issuer := arn[strings.Index(arn, ":oidc-provider/")+len(":oidc-provider/"):]
		principals = append(principals, awsiam.NewFederatedPrincipal(jsii.String(arn),
			&map[string]interface{}{"StringEquals": map[string]interface{}{
				issuer + ":sub": "system:serviceaccount:" + s.cfg.WebhookNamespace + ":" + s.cfg.WebhookServiceAccount,
				issuer + ":aud": "sts.amazonaws.com",
			}},
			jsii.String("sts:AssumeRoleWithWebIdentity")))
	}
	s.WebhookRole = awsiam.NewRole(s.Stack, jsii.String("WebhookRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewCompositePrincipal(principals...),
		Description: jsii.String("signet admission webhook: reads verdicts"),
	})
	// The webhook reads one verdict item by key: GetItem only, so it can
	// read neither the audit trail nor the leases in bulk.
	s.WebhookRole.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadVerdicts"),
		Actions:   jsii.Strings("dynamodb:GetItem"),
		Resources: &[]*string{s.Table.TableArn()},
	}))
}

// addAlarms watches for failed and throttled invocations and for anything in
// the dead-letter queues, notifying the configured topic.
func (s *Signet) addAlarms() {
	switch {
	case s.cfg.AlarmTopicArn != "":
		s.AlarmTopic = awssns.Topic_FromTopicArn(s.Stack, jsii.String("AlarmTopic"), jsii.String(s.cfg.AlarmTopicArn))
	case s.cfg.AlarmEmail != "":
		// CloudWatch can publish to an encrypted topic only through a
		// customer-managed key whose policy lets it.
		policy := awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{
			Statements: &[]awsiam.PolicyStatement{
				keyAdminStatement(),
				awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Sid:        jsii.String("CloudWatchPublishes"),
					Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
					Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
					Resources:  jsii.Strings("*"),
				}),
			},
		})
		key := awskms.NewKey(s.Stack, jsii.String("AlarmTopicKey"), &awskms.KeyProps{
			Description:       jsii.String("signet alarm topic encryption"),
			EnableKeyRotation: jsii.Bool(true),
			Policy:            policy,
			PendingWindow:     awscdk.Duration_Days(jsii.Number(7)),
			RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
		})
		topic := awssns.NewTopic(s.Stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String("signet alarms"),
			MasterKey:   key,
			EnforceSSL:  jsii.Bool(true),
		})
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.cfg.AlarmEmail), nil))
		s.AlarmTopic = topic
	}

	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	alarm := func(id, description string, metric awscloudwatch.Metric, threshold float64, op awscloudwatch.ComparisonOperator, periods float64) {
		a := metric.CreateAlarm(s.Stack, jsii.String(id), &awscloudwatch.CreateAlarmOptions{
			AlarmDescription:   jsii.String(description),
			Threshold:          jsii.Number(threshold),
			ComparisonOperator: op,
			EvaluationPeriods:  jsii.Number(periods),
			DatapointsToAlarm:  jsii.Number(periods),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		if s.AlarmTopic != nil {
			a.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.AlarmTopic))
		}
	}
	sum := &awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Sum")}
	max := &awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Maximum")}
	alarm("SignerErrorsAlarm", "signet: the signer failed invocations (see its logs; failed events land in the failure queue)",
		s.Signer.MetricErrors(sum), 1, awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1)
	// Short throttling is expected in bursts (events wait in Lambda's queue);
	// fifteen minutes of it means a backlog is building.
	alarm("SignerThrottlesAlarm", "signet: the signer has been throttled for 15 minutes; see reservedConcurrency in docs/deploy.md",
		s.Signer.MetricThrottles(sum), 1, awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 3)
	alarm("EventDeadLetterAlarm", "signet: EventBridge could not deliver ECR events to the signer (messages in the dead-letter queue)",
		s.EventDLQ.MetricApproximateNumberOfMessagesVisible(max), 0, awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, 1)
	alarm("FailedInvocationAlarm", "signet: signer invocations failed after all retries (messages in the failure queue)",
		s.FailureQueue.MetricApproximateNumberOfMessagesVisible(max), 0, awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, 1)
}

// addOutputs exports what operators and the webhook's installation need.
func (s *Signet) addOutputs() {
	out := func(id, description string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(description)})
	}
	out("SigningKeyArn", "ARN of the KMS signing key", s.SigningKey.KeyArn())
	out("SigningKeyRef", "the signing key as a cosign/sigstore KMS reference",
		awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("awskms:///"), s.SigningKey.KeyArn()}))
	if s.cfg.KeyArn == "" {
		out("SigningKeyAlias", "alias of the KMS signing key", jsii.String(s.cfg.KeyAlias))
	}
	out("TableName", "DynamoDB table of verdicts", s.Table.TableName())
	out("DeadLetterQueueUrl", "SQS queue of ECR events EventBridge could not deliver", s.EventDLQ.QueueUrl())
	out("FailedInvocationQueueUrl", "SQS queue of signer invocations that failed after retries", s.FailureQueue.QueueUrl())
	out("WebhookRoleArn", "IAM role for the admission webhook (IRSA annotation or Pod Identity association)", s.WebhookRole.RoleArn())
	out("SignerFunctionName", "the signer Lambda function", s.Signer.FunctionName())
	if s.AlarmTopic != nil {
		out("AlarmTopicArn", "SNS topic the alarms notify", s.AlarmTopic.TopicArn())
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return jsii.String(s)
}
