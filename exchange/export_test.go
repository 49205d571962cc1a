package exchange

// SubjectBuckets returns how many subjects' buckets h keeps.
func SubjectBuckets(h *Handler) int { return h.subjects.len() }
