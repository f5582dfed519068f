"""asyncjobs: durable jobs, workflows and schedules inside your app's event loop."""
