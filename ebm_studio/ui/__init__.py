"""Qt widgets: panels and tools that draw frames and send requests; they never compute."""
