package wire

// BatchResult is one entry's outcome in a batch: the entry as stored, or
// an error with its code.
type BatchResult struct {
	Entry *Entry `json:"entry,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// BatchResponse is the answer to POST /v1/entries/batch: one result per
// entry of the request, in its order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}
