// Command kube-apiserver is k8s.io/kubernetes/cmd/kube-apiserver, built through
// this wrapper module; see go.mod.in. Either `go build .` or
// `go build k8s.io/kubernetes/cmd/kube-apiserver` in the wrapper gives the
// same program.
package main

import (
	"os"
	_ "time/tzdata" // for timeZone support in CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
