module github.com/modelgate/modelgate

go 1.26.8

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/jarcoal/httpmock v1.4.2
)

require github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
