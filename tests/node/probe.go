// The real-node tests' probe: a static program FROM scratch that says hello and then does what its arguments ask,
// printing one line per step and exiting 1 on the first failure.
//
//	probe get URL      an HTTP GET (a test server on the node's address): prints the status and the body
//	probe in-cluster   the API server through the in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, the
//	                   ServiceAccount's token and CA): prints GET /api's status and who the server says we are
//	probe env PREFIX   prints the environment variables whose names start with PREFIX, sorted
//	probe hold         waits until it is stopped (SIGTERM): a native sidecar's stand-in
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	fmt.Println("probe: hello from the real node")
	args := os.Args[1:]
	for len(args) > 0 {
		var err error
		switch args[0] {
		case "get":
			if len(args) < 2 {
				fail(fmt.Errorf("get needs a URL"))
			}
			err = get(args[1])
			args = args[2:]
		case "in-cluster":
			err = inCluster()
			args = args[1:]
		case "env":
			if len(args) < 2 {
				fail(fmt.Errorf("env needs a prefix"))
			}
			printEnv(args[1])
			args = args[2:]
		case "hold":
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
			<-stop
			fmt.Println("probe: stopped")
			return
		default:
			err = fmt.Errorf("unknown step %q", args[0])
		}
		if err != nil {
			fail(err)
		}
	}
}

func printEnv(prefix string) {
	var found []string
	for _, variable := range os.Environ() {
		if strings.HasPrefix(variable, prefix) {
			found = append(found, variable)
		}
	}
	sort.Strings(found)
	for _, variable := range found {
		fmt.Println("probe: env", variable)
	}
}

func fail(err error) {
	fmt.Println("probe: failed:", err)
	os.Exit(1)
}

func get(url string) error {
	client := http.Client{Timeout: 10 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		return err
	}
	fmt.Printf("probe: GET %s -> %d %s\n", url, response.StatusCode, bytes.TrimSpace(body))
	return nil
}

func inCluster() error {
	token, err := os.ReadFile(serviceAccount + "token")
	if err != nil {
		return err
	}
	authority, err := os.ReadFile(serviceAccount + "ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(authority) {
		return fmt.Errorf("no certificate in %sca.crt", serviceAccount)
	}
	client := http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	server := "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	call := func(method, path string, body []byte) (*http.Response, error) {
		request, err := http.NewRequest(method, server+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		request.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
		request.Header.Set("Content-Type", "application/json")
		return client.Do(request)
	}

	response, err := call("GET", "/api", nil)
	if err != nil {
		return err
	}
	response.Body.Close()
	fmt.Printf("probe: GET %s/api -> %d\n", server, response.StatusCode)

	review := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	response, err = call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	var answer struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.NewDecoder(response.Body).Decode(&answer); err != nil {
		return err
	}
	fmt.Printf("probe: the API server knows us as %s (%d)\n", answer.Status.UserInfo.Username, response.StatusCode)
	return nil
}
