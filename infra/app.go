package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// appAndStack is a CDK app holding the signet stack.
type appAndStack struct {
	App   awscdk.App
	Stack *Signet
}

// newApp builds the app from props (nil reads the context the CDK CLI
// passes) with cdk-nag's AwsSolutions checks applied to every construct.
func newApp(props *awscdk.AppProps, root string) (appAndStack, error) {
	app := awscdk.NewApp(props)
	cfg, err := configFromContext(app.Node(), root)
	if err != nil {
		return appAndStack{}, err
	}
	stack := NewSignet(app, cfg)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return appAndStack{App: app, Stack: stack}, nil
}

// repoRoot returns the folder holding cdk.json: the working directory or
// the nearest one above it. The CLI runs the app from the repository root
// (cdk.json), tests run in infra/.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding cdk.json: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "cdk.json")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("finding cdk.json: not in " + dir + " or any folder above it")
		}
	}
}
