// Command infra is signet's AWS CDK app: one stack with the signing key, the
// verdict table, the signer Lambda and its event rule, the webhook's role,
// and alarms. `cdk synth` and `cdk deploy` build it and run it from the
// repository root (see cdk.json), where relative paths such as the CLI's
// cdk.out are rooted; docs/deploy.md lists its context values.
package main

import (
	"fmt"
	"os"

	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	root, err := repoRoot()
	if err == nil {
		var app appAndStack
		if app, err = newApp(nil, root); err == nil {
			app.App.Synth(nil)
			return
		}
	}
	fmt.Fprintf(os.Stderr, "signet infra: %v\n", err)
	jsii.Close()
	os.Exit(1)
}
