"""Programs chosen by territory rules: training, onboarding and incentive tiers."""
