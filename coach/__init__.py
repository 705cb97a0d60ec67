"""The coach service: stateless, personalised WOD generation over the monolith's gRPC APIs."""
