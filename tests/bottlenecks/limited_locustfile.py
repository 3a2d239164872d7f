"""Each task asks the limited route, then the fast one: both see the offered rate, evenly spaced."""

from locust import FastHttpUser, constant, task


class Client(FastHttpUser):
    wait_time = constant(1)  # replaced by the capacity finder's pacing

    @task
    def both(self) -> None:
        self.client.get("/limited")
        self.client.get("/fast")
