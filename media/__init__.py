"""Media plane: WebRTC peers, rooms that route tracks, OpenCV frame checks, snapshots.

Owns everything that touches pixels and packets and nothing that touches the
database. It is the lowest layer: it imports no other package of this project.
"""
