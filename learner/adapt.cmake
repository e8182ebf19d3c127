# Co-training and clustering: sources land with the Learner II issue.
