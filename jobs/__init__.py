"""Job specs, planning and the Ray runner that composes read -> operators -> write."""
