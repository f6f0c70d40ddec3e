// Command kube-apiserver is Kubernetes' own kube-apiserver (cmd/kube-apiserver of
// k8s.io/kubernetes v1.34.4), for the HA tests.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
