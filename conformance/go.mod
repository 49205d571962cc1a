module github.com/spiffekit/spiffekit/conformance

go 1.26.0

require (
	github.com/stretchr/testify v1.12.1
	golang.org/x/tools v0.52.0
)

require (
	github.com/spiffe/go-spiffe/v2 v2.9.0 // indirect
	github.com/spiffekit/spiffekit v0.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)

replace github.com/spiffekit/spiffekit => ../
