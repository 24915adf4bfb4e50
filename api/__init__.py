"""The anchor API: the NewsBroadcast spec (v1alpha1) and the run result, shared by the job and the controller."""
