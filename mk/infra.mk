# infra: the CDK app in infra/ (a Go module of its own, so the CDK stays out
# of the Lambda's and the webhook's dependencies). docs/deploy.md explains
# every context value.

CDK := node_modules/.bin/cdk
# No telemetry, notices, version check or version reporting: synth makes no
# network call. AWS_EC2_METADATA_DISABLED stops the CLI probing for instance
# credentials when there are none.
CDK_ENV := CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true
CDK_FLAGS := --no-notices --no-version-reporting
# `make synth` checks the template offline with a placeholder account, region
# and repository list; set SYNTH_CONTEXT to synth a real configuration, e.g.
#   make synth SYNTH_CONTEXT="-c account=111122223333 -c region=eu-west-1 -c repositories=team/*"
SYNTH_CONTEXT ?= -c account=123456789012 -c region=us-east-1 -c 'repositories=example/*'
# `make deploy` takes the account and region from your AWS credentials and the
# rest from cdk.json plus DEPLOY_CONTEXT, e.g.
#   make deploy DEPLOY_CONTEXT="-c repositories=team/*,base-images -c alarmEmail=ops@example.com"
DEPLOY_CONTEXT ?=
DEPLOY_FLAGS ?=

.PHONY: test-infra

$(CDK):
	bash scripts/tools.sh npm

synth: lambda $(CDK) ## synthesize the stack into cdk.out, offline
	AWS_EC2_METADATA_DISABLED=true $(CDK_ENV) $(CDK) synth --quiet $(CDK_FLAGS) $(SYNTH_CONTEXT)

deploy: lambda $(CDK) ## deploy the stack with your AWS credentials (see docs/deploy.md)
	$(CDK_ENV) $(CDK) deploy $(CDK_FLAGS) $(DEPLOY_FLAGS) $(DEPLOY_CONTEXT)

test-infra: $(CDK) ## CDK app tests: template assertions, cdk-nag, offline cdk synth
	cd infra && go vet ./... && go test -count=1 ./...

EXTRA_TESTS += test-infra
